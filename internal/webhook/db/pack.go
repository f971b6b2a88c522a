package db

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// A pending message's body is kept compressed: change JSON packs to about a tenth, and the
// fastest zstd level costs less than PostgreSQL's keeping of the bytes it saves
// (docs/benchmarks.md, "Webhooks"). EncodeAll and DecodeAll are safe for concurrent use.
var (
	packer, _   = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	unpacker, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
)

func pack(body []byte) []byte { return packer.EncodeAll(body, make([]byte, 0, len(body)/8+64)) }

func unpack(packed []byte) ([]byte, error) {
	body, err := unpacker.DecodeAll(packed, nil)
	if err != nil {
		return nil, fmt.Errorf("a pending message's body: %w", err)
	}
	return body, nil
}
