package jira

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	gojson "github.com/goccy/go-json"
)

// The client decodes answers with goccy/go-json, streaming; it must read every answer type exactly as
// encoding/json reads it, whatever sizes the body arrives in (one byte at a time here: the decoder's buffer is
// refilled and moved under the raw messages it keeps).
func FuzzDecodeAgreesWithEncodingJSON(f *testing.F) {
	f.Add(`{"issues":[{"id":"1","fields":{"a":[1,2.50,-0,1e400]}},{"id":"2"} ],"nextPageToken":"t","isLast":false,"names":{"a":"A"},"schema":{"a":{"type":"x"}}}`)
	f.Add(`{"startAt":0,"maxResults":50,"total":3,"isLast":true,"comments":[{"id":"1","body":"\u00e9\ud800"}],"values":[],"worklogs":null}`)
	f.Add(`[{"id":"customfield_1","key":"k","name":"N","custom":true,"schema":{"type":"array","items":"user"}}]`)
	f.Add(`{"issueChangeLogs":[{"issueId":"1","changeHistories":[{"id":"5","items":[]}]}],"nextPageToken":""}`)
	f.Add(`{"queries":[{"query":"x","errors":["bad"]}],"count":7}`)
	f.Add("{\"issues\":[\"\xff\"],\"count\":1.5}")
	f.Fuzz(func(t *testing.T, raw string) {
		for _, newV := range []func() any{
			func() any { return new(SearchPage) },
			func() any { return new(ChildPage) },
			func() any { return new([]Field) },
			func() any {
				return new(struct {
					Logs          []IssueChangelogs `json:"issueChangeLogs"`
					NextPageToken string            `json:"nextPageToken"`
				})
			},
			func() any {
				return new(struct {
					Queries []ParsedQuery `json:"queries"`
					Count   *int64        `json:"count"`
				})
			},
		} {
			std, got := newV(), newV()
			if json.NewDecoder(strings.NewReader(raw)).Decode(std) != nil {
				continue
			}
			if err := gojson.NewDecoder(iotest.OneByteReader(strings.NewReader(raw))).Decode(got); err != nil || !reflect.DeepEqual(std, got) {
				t.Fatalf("%T from %q: goccy/go-json reads %+v (%v), encoding/json %+v", std, raw, got, err, std)
			}
		}
	})
}
