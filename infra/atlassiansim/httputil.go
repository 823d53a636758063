package atlassiansim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	gojson "github.com/goccy/go-json"
)

// marshalJSON encodes an answer with goccy/go-json, which writes the bytes encoding/json would (sorted map keys,
// HTML-escaped strings, the same number forms; TestAnswersEncodeAsEncodingJSON holds it to that on every kind of
// answer the simulator builds) for less CPU: encoding/json was 60 % of the simulator's time on a search page of 50
// issues with every field, and the page's handler went from 38 to 24 ms (BenchmarkSearchJQLPage), on a host that
// the benchmarked export shares with the simulator.
func marshalJSON(v any) ([]byte, error) { return gojson.Marshal(v) }

// writeJSON writes v with an explicit Content-Length, which the truncation fault relies on.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalJSON(v)
	if err != nil {
		http.Error(w, "encoding response", http.StatusInternalServerError)
		return
	}
	writeBody(w, status, "application/json;charset=UTF-8", b)
}

func writeBody(w http.ResponseWriter, status int, contentType string, b []byte) {
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// errorCollection is Jira's error envelope (OpenAPI ErrorCollection).
func errorCollection(msgs ...string) map[string]any {
	if msgs == nil {
		msgs = []string{}
	}
	return map[string]any{"errorMessages": msgs, "errors": map[string]string{}}
}

const invalidPayload = "Invalid request payload. Refer to the REST API documentation and try again."

// decodeStrict decodes a JSON request body, refusing unknown fields: the request schemas Jira publishes say
// additionalProperties false, and a misspelt field silently ignored is a bug the product should see here.
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// splitList reads a query parameter that may be repeated and comma-separated.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func queryInt(q map[string][]string, name string, def int64) (int64, error) {
	v := ""
	if vs := q[name]; len(vs) > 0 {
		v = vs[0]
	}
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, err
	}
	return n, nil
}

func queryBool(q map[string][]string, name string) (bool, error) {
	vs := q[name]
	if len(vs) == 0 || vs[0] == "" {
		return false, nil
	}
	return strconv.ParseBool(vs[0])
}
