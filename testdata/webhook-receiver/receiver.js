// A webhook receiver for jaego's end-to-end tests. It verifies every request with the
// Standard Webhooks reference library, deduplicates by webhook-id, and can misbehave on
// request: fail a share of requests, answer slowly, or be down for a while.
//
//   node receiver.js            prints "listening <port>" when ready
//   POST /control  {"secrets":[…], "fail_rate":0.3, "slow_ms":50, "down_ms":60000}
//   GET  /state    {"messages":[{id,type,data}…] (first arrival of each id), "received", "bad_signatures", "failed", "dropped"}
import http from "node:http";
import { Webhook } from "standardwebhooks";

let secrets = [];
let failRate = 0, slowMs = 0, downUntil = 0;
const seen = new Set();
const messages = [];
let received = 0, badSignatures = 0, failed = 0, dropped = 0, lastBad = "";

function verify(body, headers) {
  for (const s of secrets) {
    try {
      return new Webhook(s).verify(body, headers);
    } catch (e) {
      lastBad = String(e);
    }
  }
  return null;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    if (req.url === "/control") {
      const c = JSON.parse(body || "{}");
      if (c.secrets) secrets = c.secrets;
      if (c.fail_rate !== undefined) failRate = c.fail_rate;
      if (c.slow_ms !== undefined) slowMs = c.slow_ms;
      if (c.down_ms !== undefined) downUntil = Date.now() + c.down_ms;
      res.writeHead(204).end();
      return;
    }
    if (req.url === "/state") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ messages, received, bad_signatures: badSignatures, last_bad: lastBad, failed, dropped }));
      return;
    }
    received++;
    if (Date.now() < downUntil) { // down: no answer at all
      dropped++;
      req.socket.destroy();
      return;
    }
    const payload = verify(body, req.headers);
    if (payload === null) {
      badSignatures++;
      res.writeHead(401).end("bad signature");
      return;
    }
    // A message is kept before the (slow) answer, as a receiver that processes and then
    // answers does: a sender that dies before the answer arrives must send it again with
    // the same id, or the receiver holds its changes twice.
    let answer;
    if (Math.random() < failRate) {
      failed++;
      answer = () => res.writeHead(503).end("try again");
    } else {
      const id = req.headers["webhook-id"];
      if (!seen.has(id)) {
        seen.add(id);
        messages.push({ id, type: payload.type, data: payload.data, traceparent: req.headers["traceparent"] || "" });
      }
      answer = () => res.writeHead(204).end();
    }
    if (slowMs > 0) setTimeout(answer, Math.floor(Math.random() * slowMs));
    else answer();
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log("listening " + server.address().port);
});
process.stdin.on("end", () => process.exit(0)); // the test's end closes stdin
process.stdin.resume();
