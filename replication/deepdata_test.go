package replication

import (
	"encoding/json"
	"strings"
	"testing"
)

// Data nested so deep that it is beyond encoding/json's depth limit only
// inside a feed answer or a raft entry is refused as json.Unmarshal
// refuses it, not read by the fast paths (found by review, 2026-11-28).
func TestDeepDataDecodesAsJSONDoes(t *testing.T) {
	for _, depth := range []int{9990, 9995, 9996, 9997} {
		d := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		page := []byte(`{"v":1,"page":{"cluster_id":"c","changes":[{"seq":1,"index":1,"kind":"item","key":"k","data":` + d + `}],"next":1,"head":1}}`)
		var resp FeedResponse
		werr := json.Unmarshal(page, &resp)
		if _, err := decodeFeedResponse(page); (err == nil) != (werr == nil) {
			t.Errorf("feed page, data %d deep: decodeFeedResponse %v, json.Unmarshal %v", depth, err, werr)
		}
		entry := []byte(`{"v":1,"ops":[{"kind":"consolidate","pull":{"station":"s","cluster_id":"c","from":0,"changes":[{"seq":1,"kind":"item","key":"k","data":` + d + `}],"head":1}}]}`)
		var e envelope
		werr = json.Unmarshal(entry, &e)
		if _, err := decodeEnvelope(entry); (err == nil) != (werr == nil) {
			t.Errorf("entry, data %d deep: decodeEnvelope %v, json.Unmarshal %v", depth, err, werr)
		}
	}
}
