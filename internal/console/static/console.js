// jaego console: one page, a view per path (/console/stock, /console/feed, /console/health).
// It calls the public API with the key the user gives, kept in sessionStorage (this tab only).
"use strict";

const $ = (id) => document.getElementById(id);
const keyName = "jaego-api-key";

// api calls the jaego API; a problem answer (RFC 9457) is thrown as an Error with its detail.
async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const key = sessionStorage.getItem(keyName);
  if (key) headers.set("Authorization", "Bearer " + key);
  const resp = await fetch(path, { ...init, headers });
  if (!resp.ok) {
    let msg = resp.status + " " + resp.statusText;
    try {
      const p = await resp.json();
      msg = (p.title || msg) + ": " + (p.detail || "") + (p.code ? " (" + p.code + ")" : "");
    } catch (_) { /* not JSON */ }
    if (resp.status === 401) msg += " — enter an API key above.";
    throw new Error(msg);
  }
  return resp;
}

// own makes a view the owner of its latest request: the view's previous request is aborted,
// and a view renders only while its signal is live. Two overlapping loads of one view (a
// create and a stop, a double click) can then never interleave: the older one's answer is
// dropped, never drawn over the newer one's (React Query and htmx's hx-sync do the same).
const owners = {};
function own(view) {
  if (owners[view]) owners[view].abort();
  const c = new AbortController();
  owners[view] = c;
  return c.signal;
}

// superseded reports whether err is the abort of a request a newer one replaced.
const superseded = (err, signal) => signal.aborted || (err && err.name === "AbortError");

// fresh reads the JSON answer of path for a view's load: undefined once a newer load
// replaced it (draw nothing then).
async function fresh(path, signal, init = {}) {
  const ans = await (await api(path, { ...init, signal })).json();
  return signal.aborted ? undefined : ans;
}

// render runs one load of a view as the view's latest request: draw awaits what it needs
// and draws only while its signal is live; a problem shows, unless a newer load replaced it.
async function render(view, draw) {
  const signal = own(view);
  showProblem(null);
  try {
    await draw(signal);
  } catch (err) {
    if (!superseded(err, signal)) showProblem(err);
  }
}

function showProblem(err) {
  const p = $("problem");
  p.textContent = err ? err.message : "";
  p.hidden = !err;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

// --- stock ---
// lookup shows a store's SKUs, or (stores given) one SKU across stores.
function lookup(store, skus, stores) {
  return render("stock", async (signal) => {
    const table = $("stock-table");
    const body = table.tBodies[0];
    const resp = await api(stores
      ? "/v1/skus/" + encodeURIComponent(skus) + "/stock?store=" + encodeURIComponent(stores)
      : "/v1/stores/" + encodeURIComponent(store) + "/stock?sku=" + encodeURIComponent(skus), { signal });
    const ans = await resp.json();
    if (signal.aborted) return;
    body.replaceChildren();
    const source = resp.headers.get("X-Stock-Source");
    for (const s of ans.items) {
      const row = body.insertRow();
      row.dataset.sku = s.sku;
      row.dataset.store = s.store;
      cell(row, s.store);
      cell(row, s.sku);
      cell(row, s.available, "num available");
      cell(row, s.on_hand, "num on-hand");
      cell(row, s.reserved, "num");
      cell(row, s.safety, "num");
      cell(row, s.version, "num version");
      cell(row, age(s.updated_at));
      cell(row, s.source || source || "", s.source === "fallback" ? "fallback" : "");
    }
    table.hidden = ans.items.length === 0;
    const missing = $("stock-missing");
    missing.textContent = ans.missing.length ? "No record: " + ans.missing.join(", ") : "";
    missing.hidden = !ans.missing.length;
  });
}

function age(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return new Date(iso).toLocaleString();
}

function stockView() {
  const q = new URLSearchParams(location.search);
  const store = q.get("store"), sku = q.get("sku"), stores = q.get("stores");
  if (stores && sku) {
    $("across-sku").value = sku;
    $("across-stores").value = stores;
    lookup("", sku, stores);
    return;
  }
  if (store) $("store").value = store;
  if (sku) $("skus").value = sku;
  if (store && sku) lookup(store, sku);
}

// --- live feed: SSE read with fetch, so that it can carry the key ---
let feedAbort = null, paused = false;
const counts = [];

async function follow() {
  if (feedAbort) return;
  feedAbort = new AbortController();
  let cursor = "";
  while (feedAbort && !feedAbort.signal.aborted) {
    try {
      const resp = await api("/v1/changes/stream" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""), { signal: feedAbort.signal });
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const event = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const fields = {};
          for (const line of event.split("\n")) {
            const i = line.indexOf(": ");
            if (i > 0) fields[line.slice(0, i)] = line.slice(i + 2);
          }
          if (fields.id) cursor = fields.id;
          if (fields.event === "changes" && fields.data) show(JSON.parse(fields.data).changes);
        }
      }
    } catch (err) {
      if (feedAbort && feedAbort.signal.aborted) return;
      showProblem(err);
    }
    await new Promise((r) => setTimeout(r, 1000)); // the stream ended: resume from the cursor
  }
}

function show(changes) {
  counts.push(changes.length);
  if (paused) return;
  const want = { store: $("feed-store").value.trim(), sku: $("feed-sku").value.trim(), type: $("feed-type").value.trim() };
  const body = $("feed-table").tBodies[0];
  for (const c of changes) {
    if ((want.store && c.store !== want.store) || (want.sku && c.sku !== want.sku) || (want.type && c.type !== want.type)) continue;
    const row = body.insertRow(0);
    row.dataset.event = c.event_id;
    cell(row, new Date(c.at).toLocaleTimeString());
    cell(row, c.store);
    cell(row, c.sku);
    cell(row, c.type);
    cell(row, c.delta, "num");
    cell(row, c.on_hand, "num");
    cell(row, c.reserved, "num");
    cell(row, c.version, "num");
    cell(row, c.event_id);
  }
  while (body.rows.length > 500) body.deleteRow(-1);
}

function sparkline() {
  const rate = counts.reduce((a, b) => a + b, 0);
  counts.length = 0;
  rates.push(rate);
  if (rates.length > 60) rates.shift();
  $("feed-rate").textContent = rate;
  const cv = $("feed-spark"), g = cv.getContext("2d");
  g.clearRect(0, 0, cv.width, cv.height);
  const max = Math.max(1, ...rates);
  g.beginPath();
  rates.forEach((v, i) => {
    const x = (i / 59) * cv.width, y = cv.height - (v / max) * (cv.height - 2) - 1;
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
}
const rates = []; // changes a second, the last minute

// --- health ---
function healthView() {
  return render("health", async (signal) => {
    const dl = $("health");
    delete dl.dataset.complete;
    const items = [];
    const add = (k, v) => {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      items.push(dt, dd);
    };
    const ready = await (await fetch("/readyz", { signal })).json();
    add("Readiness", ready.status + (ready.checks ? " " + JSON.stringify(ready.checks) : ""));
    const breaker = await (await api("/v1/admin/breaker", { signal })).json();
    add("Redis breaker", breaker.state + " since " + new Date(breaker.since).toLocaleString() +
      " (failures " + (breaker.failure_rate * 100).toFixed(1) + "%, slow " + (breaker.slow_rate * 100).toFixed(1) + "%)");
    if (breaker.copy_position !== undefined) {
      add("Durable copy", breaker.copy_changes + " changes; as of " + (breaker.copy_position ? new Date(breaker.copy_position).toLocaleString() : "—") +
        (breaker.copy_lag_seconds != null ? ", " + breaker.copy_lag_seconds.toFixed(1) + " s behind" : ""));
    }
    // Consumer lag, from the Prometheus text: the most a partition of the group is behind.
    const metrics = await (await fetch("/metrics", { signal })).text();
    const lags = [...metrics.matchAll(/^jaego_consumer_group_lag\{[^}]*\} (\S+)$/gm)].map((m) => Number(m[1]));
    add("Kafka consumer lag", lags.length ? Math.max(...lags) + " records (the most behind partition)" : "no consumer group reported yet");
    if (signal.aborted) return;
    dl.replaceChildren(...items);
    dl.dataset.complete = "true";
  });
}

// confirmButton is a button that asks question, then POSTs to path and calls then.
function confirmButton(text, label, question, path, then) {
  return actionButton(text, label, async () => {
    if (!confirm(question)) return;
    await api(path, { method: "POST" });
  }, then);
}

// actionButton is a button that runs run, shows its problem if it fails, else calls then.
function actionButton(text, label, run, then) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", async () => {
    try { await run(); } catch (err) { showProblem(err); return; }
    then();
  });
  return b;
}

// --- history ---
function showHistory(store, sku) {
  return render("history", async (signal) => {
    const table = $("history-table"), body = table.tBodies[0];
    const ans = await fresh("/v1/stores/" + encodeURIComponent(store) + "/skus/" + encodeURIComponent(sku) + "/history", signal);
    if (!ans) return;
    body.replaceChildren();
    for (const c of ans.changes) {
      const row = body.insertRow();
      cell(row, new Date(c.at).toLocaleString());
      cell(row, c.type);
      cell(row, c.delta, "num");
      cell(row, c.on_hand, "num");
      cell(row, c.reserved, "num");
      cell(row, c.version, "num");
      cell(row, c.event_id);
    }
    table.hidden = false;
  });
}

// --- promotions ---
const specTemplate = {
  name: "Buy 2, get a sample", starts_at: new Date().toISOString().slice(0, 10) + "T00:00:00Z",
  ends_at: new Date(Date.now() + 30 * 864e5).toISOString().slice(0, 10) + "T00:00:00Z", priority: 5,
  channels: ["online", "store"], targets: ["8809461234567"], condition: { min_qty: 2, min_amount: 0 },
  gifts: [{ sku: "GIFT-SAMPLE-KIT", qty: 1 }], max_per_order: 1,
};

// shownStatus is what a promotion is now: a stored "active" one that has not started yet is
// scheduled, one whose period is over has ended.
function shownStatus(p, now = Date.now()) {
  if (p.status !== "active") return p.status;
  if (Date.parse(p.starts_at) > now) return "scheduled";
  if (Date.parse(p.ends_at) <= now) return "ended";
  return "active";
}

function promotionsView() {
  return render("promotions", async (signal) => {
    if (!$("promo-spec").value) $("promo-spec").value = JSON.stringify(specTemplate, null, 2);
    const body = $("promo-table").tBodies[0];
    const ans = await fresh("/v1/admin/promotions?limit=200", signal);
    if (!ans) return;
    body.replaceChildren();
    for (const p of ans.promotions) {
      const row = body.insertRow();
      row.dataset.id = p.id;
      row.dataset.name = p.name;
      cell(row, p.name);
      cell(row, shownStatus(p), "status");
      cell(row, p.starts_at.slice(0, 10));
      cell(row, p.ends_at.slice(0, 10));
      cell(row, p.targets.join(", "));
      cell(row, p.gifts.map((g) => g.sku + " ×" + g.qty).join(", "));
      cell(row, p.updated_by || "—");
      const td = row.insertCell();
      if (p.status === "active") {
        td.append(confirmButton("Stop", "Stop " + p.name, "Stop \"" + p.name + "\"? It grants nothing from the next request on.",
          "/v1/admin/promotions/" + p.id + "/stop", promotionsView));
      }
    }
    body.dataset.loaded = String(Date.now());
  });
}

function preview(items, store) {
  return render("preview", async (signal) => {
    const list = $("preview");
    const order = { channel: "online", items: items.split(",").filter(Boolean).map((s) => {
      const [sku, qty] = s.trim().split(":");
      return { sku, qty: Number(qty || 1), price: 0 };
    }) };
    if (store) order.store = store;
    const ans = await (await api("/v1/gifts/evaluate", { method: "POST", body: JSON.stringify(order), headers: { "Content-Type": "application/json" }, signal })).json();
    if (signal.aborted) return;
    list.replaceChildren();
    for (const g of ans.gifts) {
      const li = document.createElement("li");
      li.dataset.sku = g.sku;
      li.textContent = g.sku + " ×" + g.qty + (g.available !== undefined ? " (" + g.available + " at the store)" : "");
      list.append(li);
    }
    if (!ans.gifts.length) {
      const li = document.createElement("li");
      li.textContent = "No gift for this basket.";
      list.append(li);
    }
  });
}

// --- locks ---
function locksView() {
  return render("locks", async (signal) => {
    const body = $("lock-table").tBodies[0];
    const ans = await fresh("/v1/admin/locks", signal);
    if (!ans) return;
    body.replaceChildren();
    for (const l of ans.locks) {
      const row = body.insertRow();
      row.dataset.name = l.name;
      cell(row, l.name);
      cell(row, l.token, "num");
      cell(row, (l.ttl_ms / 1000).toFixed(1) + " s", "num");
      row.insertCell().append(confirmButton("Force unlock", "Force unlock " + l.name,
        "Force-unlock " + l.name + "? Its holder loses it; its fencing token stops being honoured.",
        "/v1/admin/locks/" + encodeURIComponent(l.name) + "/force-unlock", locksView));
    }
    $("locks-none").hidden = ans.locks.length > 0;
  });
}

// --- webhooks ---
function webhooksView() {
  return render("webhooks", async (signal) => {
    const body = $("wh-table").tBodies[0];
    const ans = await fresh("/v1/admin/webhooks", signal);
    if (!ans) return;
    body.replaceChildren();
    for (const w of ans.webhooks) {
      const row = body.insertRow();
      row.dataset.id = w.id;
      cell(row, w.id);
      cell(row, w.url);
      cell(row, w.events.join(", "));
      cell(row, w.status, "status-" + w.status);
      cell(row, w.lag_seconds.toFixed(1) + " s", "num");
      cell(row, w.pending_messages, "num");
      cell(row, w.last_success ? age(w.last_success) : "never");
      cell(row, w.last_error || "");
      const path = "/v1/admin/webhooks/" + encodeURIComponent(w.id);
      const json = { "Content-Type": "application/json" };
      const actions = row.insertCell();
      const next = w.status === "active" ? "paused" : "active";
      actions.append(
        actionButton(next === "paused" ? "Pause" : "Resume", (next === "paused" ? "Pause " : "Resume ") + w.id,
          () => api(path, { method: "PATCH", headers: json, body: JSON.stringify({ status: next }) }), webhooksView),
        actionButton("Replay", "Replay " + w.id, async () => {
          const from = prompt("Deliver again from (an RFC 3339 time or a cursor):", new Date(Date.now() - 3600e3).toISOString());
          if (from) await api(path + "/replay", { method: "POST", headers: json, body: JSON.stringify({ from }) });
        }, webhooksView),
        actionButton("Send test", "Send a test message to " + w.id, async () => {
          const t = await (await api(path + "/test", { method: "POST" })).json();
          $("wh-secret").textContent = "Test message to " + w.id + ": " + (t.http_status || "no answer") +
            " in " + t.latency_ms.toFixed(1) + " ms" + (t.error ? " — " + t.error : "");
          $("wh-secret").hidden = false;
        }, () => {}), // a test message changes nothing listed
        actionButton("Deliveries", "Show the deliveries of " + w.id, () => showDeliveries(w.id), () => {}));
    }
    $("wh-none").hidden = ans.webhooks.length > 0;
  });
}

// showDeliveries shows the last 20 attempts of one subscription (its own request owner, so
// a list refresh does not cancel it).
function showDeliveries(id) {
  return render("webhook-log", async (signal) => {
    const ans = await fresh("/v1/admin/webhooks/" + encodeURIComponent(id) + "/deliveries?limit=20", signal);
    if (!ans) return;
    const body = $("wh-log").tBodies[0];
    body.replaceChildren();
    for (const d of ans.deliveries) {
      const row = body.insertRow();
      cell(row, new Date(d.at).toLocaleTimeString());
      cell(row, d.message_id);
      cell(row, d.type);
      cell(row, d.attempt, "num");
      cell(row, d.http_status || "—", "num");
      cell(row, d.latency_ms.toFixed(1) + " ms", "num");
      cell(row, d.changes, "num");
      cell(row, d.error || "");
    }
    $("wh-log-title").textContent = "Last deliveries of " + id;
    $("wh-log-title").hidden = $("wh-log").hidden = false;
  });
}

// --- reservations ---
function showReservation(id, step) {
  return render("reservation", async (signal) => {
    const dl = $("rsv");
    const path = "/v1/reservations/" + encodeURIComponent(id) + (step ? "/" + step : "");
    const r = await (await api(path, step ? { method: "POST", signal } : { signal })).json();
    if (signal.aborted) return;
    const items = [];
    for (const [k, v] of [["Store", r.store], ["Status", r.status], ["Items", r.items.map((i) => i.sku + " ×" + i.qty).join(", ")], ["Expires", new Date(r.expires_at).toLocaleString()]]) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      items.push(dt, dd);
    }
    dl.replaceChildren(...items);
    $("rsv-confirm").hidden = $("rsv-cancel").hidden = r.status !== "held";
    if (step) listReservations($("rsv-store").value.trim() || r.store, $("rsv-status").value);
  });
}

// listReservations shows a store's reservations of a status (GET /v1/reservations), each
// with a link to its page.
function listReservations(store, status) {
  return render("reservations", async (signal) => {
    const table = $("rsv-table"), body = table.tBodies[0];
    const q = "?store=" + encodeURIComponent(store) + (status ? "&status=" + encodeURIComponent(status) : "") + "&limit=200";
    const ans = await fresh("/v1/reservations" + q, signal);
    if (!ans) return;
    body.replaceChildren();
    for (const r of ans.reservations) {
      const row = body.insertRow();
      row.dataset.id = r.reservation_id;
      const a = document.createElement("a");
      a.href = "/console/reservations?store=" + encodeURIComponent(store) + "&id=" + encodeURIComponent(r.reservation_id);
      a.textContent = r.reservation_id;
      a.addEventListener("click", (e) => {
        e.preventDefault();
        $("rsv-id").value = r.reservation_id;
        showReservation(r.reservation_id);
      });
      row.insertCell().append(a);
      cell(row, r.status, "status");
      cell(row, r.items.map((i) => i.sku + " ×" + i.qty).join(", "));
      cell(row, new Date(r.expires_at).toLocaleString());
    }
    table.hidden = false;
    $("rsv-none").hidden = ans.reservations.length > 0;
  });
}

// --- sourcing ---
// parseBasket reads "sku:qty, sku:qty" (qty 1 when left out).
function parseBasket(text) {
  return text.split(",").map((x) => x.trim()).filter(Boolean).map((x) => {
    const [sku, qty] = x.split(":");
    return { sku: sku.trim(), qty: qty ? Number(qty) : 1 };
  });
}

const svgNS = "http://www.w3.org/2000/svg";
function svg(parent, tag, attrs, text) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  parent.append(el);
  return el;
}

// source asks which stores should fill the basket (POST /v1/sourcing), the stores around
// (GET /v1/stores) and what each has of the basket (POST /v1/availability), and draws them:
// the destination in the middle, the radius as a circle, each store coloured by what it can
// supply, the best plan's stores ringed and joined to the destination.
function source(q) {
  return render("sourcing", async (signal) => {
    const items = parseBasket(q.items), [lat, lon] = q.at.split(",").map(Number), radius = Number(q.radius) || 10;
    const body = { items, to: { lat, lon }, radius_km: radius, max_stores: Number(q.max) || 1 };
    if (q.capability) body.capability = q.capability;
    const json = { method: "POST", headers: { "Content-Type": "application/json" } };
    const ans = await fresh("/v1/sourcing", signal, { ...json, body: JSON.stringify(body) });
    const near = await fresh("/v1/stores?near=" + encodeURIComponent(q.at) + "&radius_km=" + radius + "&limit=100", signal);
    if (!ans || !near) return;
    const open = near.stores.filter((s) => s.status === "open" && (!q.capability || s.capabilities.includes(q.capability)));
    const avail = open.length ? await fresh("/v1/availability", signal, { ...json, body: JSON.stringify({ items, stores: open.map((s) => s.store) }) }) : { stores: [] };
    if (!avail) return;
    const kind = {};
    for (const s of near.stores) kind[s.store] = "closed";
    for (const a of avail.stores) kind[a.store] = a.complete ? "complete" : a.short.length < items.length ? "partial" : "short";
    drawMap(near.stores, kind, ans.plans[0], radius, lat, lon);
    const plans = $("src-plans");
    plans.replaceChildren();
    for (const [i, p] of ans.plans.entries()) {
      const li = document.createElement("li");
      li.className = i === 0 ? "best" : "";
      li.textContent = (p.complete ? "" : "partial: ") + p.stores.map((s) => s.store + " (" + s.distance_km.toFixed(1) + " km): " +
        s.items.map((it) => it.sku + " ×" + it.qty).join(", ")).join(" + ") + (p.missing ? " — missing " + p.missing.map((it) => it.sku).join(", ") : "");
      plans.append(li);
    }
    if (!ans.plans.length) plans.append(Object.assign(document.createElement("li"), { textContent: "No store within reach has any of the basket." }));
    const skipped = $("src-skipped").tBodies[0];
    skipped.replaceChildren();
    for (const sk of ans.skipped) {
      const row = skipped.insertRow();
      row.dataset.store = sk.store;
      cell(row, sk.store);
      cell(row, sk.distance_km.toFixed(2), "num");
      cell(row, sk.reason + (sk.short ? ": " + sk.short.map((x) => x.sku + " " + x.available + "/" + x.qty).join(", ") : ""), "reason");
    }
  });
}

function drawMap(stores, kind, best, radius, lat, lon) {
  const map = $("src-map");
  map.replaceChildren();
  const scale = 100 / radius, cos = Math.cos(lat * Math.PI / 180);
  const at = (s) => [(s.lon - lon) * 111.32 * cos * scale, -(s.lat - lat) * 110.57 * scale];
  svg(map, "circle", { cx: 0, cy: 0, r: 100, class: "reach" });
  const chosen = new Set(best ? best.stores.map((s) => s.store) : []);
  for (const s of stores) {
    const [x, y] = at(s);
    if (chosen.has(s.store)) svg(map, "line", { x1: 0, y1: 0, x2: x, y2: y, class: "route" });
  }
  svg(map, "path", { d: "M-4 0H4M0 -4V4", class: "to" });
  for (const s of stores) {
    const [x, y] = at(s);
    const c = svg(map, "circle", { cx: x, cy: y, r: 3.5, class: "store " + kind[s.store] + (chosen.has(s.store) ? " chosen" : ""), "data-store": s.store });
    svg(c, "title", {}, s.store + " " + s.name + ": " + kind[s.store] + ", " + s.distance_km.toFixed(2) + " km");
    svg(map, "text", { x: x + 5, y: y + 2 }, s.store);
  }
}

function sourcingQuery() {
  const q = new URLSearchParams(location.search);
  return { items: q.get("items") || "", at: q.get("at") || "", radius: q.get("radius") || "10", capability: q.get("capability") ?? "same_day", max: q.get("max") || "1" };
}

function sourcingView() {
  const q = sourcingQuery();
  $("src-items").value = q.items;
  $("src-at").value = q.at || $("src-place").value;
  const place = [...$("src-place").options].find((o) => o.value === $("src-at").value);
  $("src-place").value = place ? place.value : "";
  $("src-radius").value = q.radius;
  $("src-capability").value = q.capability;
  $("src-max").value = q.max;
  if (q.items && q.at) source(q);
}

// --- the page ---
function route() {
  const view = location.pathname.replace(/^\/console\/?/, "") || "stock";
  for (const v of views) $("view-" + v).hidden = v !== view;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (view === "stock") stockView();
  if (view === "feed") follow();
  if (view === "health") healthView();
  if (view === "promotions") promotionsView();
  if (view === "locks") locksView();
  if (view === "sourcing") sourcingView();
  if (view === "webhooks") webhooksView();
  const q = new URLSearchParams(location.search);
  if (view === "history" && q.get("store") && q.get("sku")) {
    $("h-store").value = q.get("store");
    $("h-sku").value = q.get("sku");
    showHistory(q.get("store"), q.get("sku"));
  }
  if (view === "reservations" && q.get("store")) {
    $("rsv-store").value = q.get("store");
    listReservations(q.get("store"), $("rsv-status").value);
  }
  if (view === "reservations" && q.get("id")) {
    $("rsv-id").value = q.get("id");
    showReservation(q.get("id"));
  }
}
const views = ["stock", "feed", "history", "promotions", "locks", "reservations", "sourcing", "webhooks", "health"];

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(keyName) || "";
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(keyName, $("api-key").value.trim());
    route();
  });
  $("stock-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const store = $("store").value.trim(), skus = $("skus").value.replace(/\s+/g, "");
    window.history.replaceState(null, "", "/console/stock?store=" + encodeURIComponent(store) + "&sku=" + encodeURIComponent(skus));
    lookup(store, skus);
  });
  $("across-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const sku = $("across-sku").value.trim(), stores = $("across-stores").value.replace(/\s+/g, "");
    window.history.replaceState(null, "", "/console/stock?sku=" + encodeURIComponent(sku) + "&stores=" + encodeURIComponent(stores));
    lookup("", sku, stores);
  });
  $("feed-pause").addEventListener("click", (e) => {
    paused = !paused;
    e.target.textContent = paused ? "Resume" : "Pause";
    e.target.setAttribute("aria-pressed", String(paused));
  });
  $("history-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showHistory($("h-store").value.trim(), $("h-sku").value.trim());
  });
  $("promo-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    showProblem(null);
    const signal = own("promotions"); // a list load under way is older than this change
    try {
      await api("/v1/admin/promotions", { method: "POST", body: $("promo-spec").value, headers: { "Content-Type": "application/json" } });
      if (owners.promotions === undefined || owners.promotions.signal === signal) promotionsView();
    } catch (err) {
      showProblem(err);
    }
  });
  $("preview-form").addEventListener("submit", (e) => {
    e.preventDefault();
    preview($("preview-items").value, $("preview-store").value.trim());
  });
  $("rsv-list-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const store = $("rsv-store").value.trim();
    window.history.replaceState(null, "", "/console/reservations?store=" + encodeURIComponent(store));
    listReservations(store, $("rsv-status").value);
  });
  $("rsv-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showReservation($("rsv-id").value.trim());
  });
  $("rsv-confirm").addEventListener("click", () => showReservation($("rsv-id").value.trim(), "confirm"));
  $("rsv-cancel").addEventListener("click", () => showReservation($("rsv-id").value.trim(), "cancel"));
  $("src-place").addEventListener("change", () => { if ($("src-place").value) $("src-at").value = $("src-place").value; });
  $("src-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = { items: $("src-items").value.trim(), at: $("src-at").value.replace(/\s+/g, ""), radius: $("src-radius").value,
      capability: $("src-capability").value, max: $("src-max").value };
    window.history.replaceState(null, "", "/console/sourcing?" + new URLSearchParams(q));
    source(q);
  });
  $("wh-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    showProblem(null);
    const list = (v) => v.split(",").map((x) => x.trim()).filter((x) => x);
    const spec = { url: $("wh-url").value.trim(), events: list($("wh-events").value), stores: list($("wh-stores").value) };
    try {
      const w = await (await api("/v1/admin/webhooks", { method: "POST", body: JSON.stringify(spec), headers: { "Content-Type": "application/json" } })).json();
      $("wh-secret").textContent = "Subscribed " + w.id + ". Its signing secret, shown only now: " + w.secret;
      $("wh-secret").hidden = false;
      webhooksView();
    } catch (err) {
      showProblem(err);
    }
  });
  setInterval(sparkline, 1000);
  route();
});
