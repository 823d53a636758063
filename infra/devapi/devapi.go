// Package devapi serves template.yaml's HTTP API locally: it matches each request against the HttpApi routes the
// template declares, turns it into an API Gateway payload 2.0 event, invokes the function and turns the
// function's response back into HTTP, the way API Gateway does.
package devapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"jiraexport/infra/samtemplate"
)

// Invoker runs one function invocation.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// Limits as AWS applies them: API Gateway takes request bodies up to 10 MB, and Lambda takes events and returns
// responses up to 6 MB each (synchronous invocation). The smaller one is what an HTTP API function really gets.
const (
	maxPayload       = 10 << 20
	maxLambdaPayload = 6 << 20
)

type route struct {
	method   string
	segments []string // literal, "{name}" or "{name+}"
	key      string   // route key, e.g. "GET /v1/{proxy+}"
	fn       Invoker
	timeout  time.Duration
}

// Router is an http.Handler standing in for API Gateway's HTTP API.
type Router struct {
	routes []route
	log    *slog.Logger
}

// New builds a router for every HttpApi route of every function in fns (logical id → invoker). Functions of the
// template that are not in fns are not served.
func New(t *samtemplate.Template, fns map[string]Invoker, log *slog.Logger) (*Router, error) {
	all, err := t.Functions()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Router{log: log}
	for _, f := range all {
		inv, ok := fns[f.LogicalID]
		if !ok {
			continue
		}
		timeout := time.Duration(f.Timeout) * time.Second
		if timeout <= 0 || timeout > 30*time.Second {
			timeout = 30 * time.Second // API Gateway's integration limit
		}
		for _, rt := range f.Routes {
			r.routes = append(r.routes, route{
				method:   rt.Method,
				segments: split(rt.Path),
				key:      rt.Method + " " + rt.Path,
				fn:       inv,
				timeout:  timeout,
			})
		}
	}
	// API Gateway picks the most specific route: more literal segments first, greedy paths last, ANY after
	// explicit methods.
	sort.SliceStable(r.routes, func(i, j int) bool { return specificity(r.routes[i]) > specificity(r.routes[j]) })
	return r, nil
}

func split(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func specificity(r route) int {
	s := 0
	for _, seg := range r.segments {
		switch {
		case strings.HasSuffix(seg, "+}"):
			s += 0
		case strings.HasPrefix(seg, "{"):
			s += 10
		default:
			s += 100
		}
	}
	if r.method != "ANY" {
		s++
	}
	return s
}

func (r route) match(method string, segs []string) (map[string]string, bool) {
	if r.method != "ANY" && r.method != method {
		return nil, false
	}
	params := map[string]string{}
	for i, seg := range r.segments {
		if strings.HasSuffix(seg, "+}") {
			if i >= len(segs) {
				return nil, false
			}
			params[seg[1:len(seg)-2]] = strings.Join(segs[i:], "/")
			return params, true
		}
		if i >= len(segs) {
			return nil, false
		}
		if strings.HasPrefix(seg, "{") {
			v, err := url.PathUnescape(segs[i])
			if err != nil {
				return nil, false
			}
			params[seg[1:len(seg)-1]] = v
			continue
		}
		if seg != segs[i] {
			return nil, false
		}
	}
	return params, len(segs) == len(r.segments)
}

func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	segs := split(req.URL.EscapedPath())
	for _, rt := range r.routes {
		params, ok := rt.match(req.Method, segs)
		if !ok {
			continue
		}
		r.serve(w, req, rt, params)
		return
	}
	writeJSON(w, http.StatusNotFound, `{"message":"Not Found"}`)
}

func (r *Router) serve(w http.ResponseWriter, req *http.Request, rt route, params map[string]string) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxPayload+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, `{"message":"Bad Request"}`)
		return
	}
	if len(body) > maxPayload {
		writeJSON(w, http.StatusRequestEntityTooLarge, `{"message":"Request Entity Too Large"}`)
		return
	}
	ev := Event(req, body, rt.key, params)
	payload, err := json.Marshal(ev)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, `{"message":"Internal Server Error"}`)
		return
	}
	if len(payload) > maxLambdaPayload {
		writeJSON(w, http.StatusRequestEntityTooLarge, `{"message":"Request Entity Too Large"}`)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), rt.timeout)
	defer cancel()
	out, err := rt.fn.Invoke(ctx, payload)
	if err != nil {
		r.log.Error("function invocation failed", "route", rt.key, "err", err)
		if errors.Is(err, context.DeadlineExceeded) {
			writeJSON(w, http.StatusServiceUnavailable, `{"message":"Service Unavailable"}`)
			return
		}
		writeJSON(w, http.StatusInternalServerError, `{"message":"Internal Server Error"}`)
		return
	}
	if len(out) > maxLambdaPayload {
		r.log.Error("function response exceeds Lambda's 6 MB limit", "route", rt.key, "bytes", len(out))
		writeJSON(w, http.StatusInternalServerError, `{"message":"Internal Server Error"}`)
		return
	}
	if err := writeResponse(w, out); err != nil {
		r.log.Error("malformed function response", "route", rt.key, "err", err)
		writeJSON(w, http.StatusInternalServerError, `{"message":"Internal Server Error"}`)
	}
}

// Event builds the API Gateway HTTP API payload 2.0 event for req, as API Gateway would.
func Event(req *http.Request, body []byte, routeKey string, params map[string]string) events.APIGatewayV2HTTPRequest {
	now := time.Now().UTC()
	headers := map[string]string{}
	var cookies []string
	for k, vs := range req.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	host := req.Host
	headers["host"] = host
	if _, ok := headers["x-forwarded-proto"]; !ok {
		headers["x-forwarded-proto"] = "http"
	}
	var query map[string]string
	if len(req.URL.Query()) > 0 {
		query = map[string]string{}
		for k, vs := range req.URL.Query() {
			query[k] = strings.Join(vs, ",")
		}
	}
	if len(params) == 0 {
		params = nil
	}
	sourceIP, _, _ := net.SplitHostPort(req.RemoteAddr)
	reqID := randomID()
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              routeKey,
		RawPath:               req.URL.EscapedPath(),
		RawQueryString:        req.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     routeKey,
			AccountID:    "123456789012",
			Stage:        "$default",
			RequestID:    reqID,
			APIID:        "local",
			DomainName:   host,
			DomainPrefix: strings.Split(host, ".")[0],
			Time:         now.Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    req.Method,
				Path:      req.URL.EscapedPath(),
				Protocol:  req.Proto,
				SourceIP:  sourceIP,
				UserAgent: req.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		if isText(headers["content-type"]) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

func isText(ct string) bool {
	ct = strings.ToLower(ct)
	return strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || strings.Contains(ct, "xml") ||
		strings.Contains(ct, "x-www-form-urlencoded") || strings.Contains(ct, "javascript")
}

// writeResponse interprets a payload 2.0 response. Like API Gateway, a result without "statusCode" is taken
// as a 200 JSON body.
func writeResponse(w http.ResponseWriter, out []byte) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(out, &probe); err != nil || probe["statusCode"] == nil {
		if !json.Valid(out) {
			return fmt.Errorf("response is not JSON")
		}
		writeJSON(w, http.StatusOK, string(out))
		return nil
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return err
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	// multiValueHeaders belongs to payload 1.0; HTTP APIs ignore it in 2.0 responses, and so does this router.
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			return fmt.Errorf("body is not base64: %w", err)
		}
	}
	if w.Header().Get("Content-Type") == "" && len(body) > 0 {
		w.Header().Set("Content-Type", "application/json")
	}
	if resp.StatusCode == 0 {
		resp.StatusCode = http.StatusOK
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
