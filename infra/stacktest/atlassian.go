package stacktest

import (
	"context"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"jiraexport/infra/atlassiansim"
)

// Atlassian is the simulator standing in for Atlassian in front of an OAuth app that is not serving yet: the
// app's address is taken first, since the simulator must know the app's redirect URI and the app the
// simulator's URL.
type Atlassian struct {
	Sim *atlassiansim.Server
	// URL is the simulator's base URL (ATLASSIAN_AUTH_URL and ATLASSIAN_API_URL).
	URL string
	// Listener is where the app must serve, at Base; its redirect URI is Base + "/oauth/callback".
	Listener net.Listener
	Base     string
}

// StartAtlassian starts the simulator of cfg with the app's redirect URI registered and its test switches on
// (consent without a person); both stop with the test.
func StartAtlassian(tb testing.TB, cfg atlassiansim.Config) *Atlassian {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	a := &Atlassian{Listener: ln, Base: "http://" + ln.Addr().String()}
	cfg.RedirectURIs, cfg.TestControls = []string{a.Base + "/oauth/callback"}, true
	if a.Sim, err = atlassiansim.New(cfg); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	if a.URL, err = a.Sim.Start(ctx, ""); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = a.Sim.Close() })
	return a
}

// Browser is one user agent: its own cookie jar, following redirects except into the app's callback, so a test
// decides which browser delivers it (and when). Account, when set, is who logs in at Atlassian.
type Browser struct {
	Client  *http.Client
	Jar     *cookiejar.Jar
	Account string
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser(tb testing.TB) *Browser {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &Browser{Jar: jar, Client: &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Path == "/oauth/callback" {
				return http.ErrUseLastResponse
			}
			return nil
		}}}
}

// As sets who logs in at Atlassian and returns the browser.
func (b *Browser) As(account string) *Browser { b.Account = account; return b }

// SimHeaders are the simulator's test switches: the consent decision (accept or deny) and the account. Go
// copies them to every redirect hop; the simulator honours them only with TestControls on.
func (b *Browser) SimHeaders(req *http.Request, decision string) {
	req.Header.Set("X-Sim-Consent", decision)
	if b.Account != "" {
		req.Header.Set("X-Sim-User", b.Account)
	}
}

var (
	reFormAction = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	reFormTicket = regexp.MustCompile(`name="reauth" value="([^"]+)"`)
	reFormCSRF   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	reAPIKey     = regexp.MustCompile(`<pre class="key" id="api-key">([^<]+)</pre>`)
)

// ConfirmForm is the re-authorisation page's form (shared/oauthflow) as a browser reads it.
type ConfirmForm struct{ Action, Ticket, CSRF string }

// FormOf reads the re-authorisation form of a page; ok is false when the page has none.
func FormOf(body string) (f ConfirmForm, ok bool) {
	a, tk, c := reFormAction.FindStringSubmatch(body), reFormTicket.FindStringSubmatch(body), reFormCSRF.FindStringSubmatch(body)
	if a == nil || tk == nil || c == nil {
		return ConfirmForm{}, false
	}
	return ConfirmForm{html.UnescapeString(a[1]), html.UnescapeString(tk[1]), html.UnescapeString(c[1])}, true
}

// Submit posts the re-authorisation form with the given ticket and CSRF token, as decision at the simulator;
// origin "" sends the form's own origin, "-" none.
func (b *Browser) Submit(tb testing.TB, f ConfirmForm, ticket, csrf, decision, origin string) *http.Response {
	tb.Helper()
	form := url.Values{"reauth": {ticket}, "csrf": {csrf}}
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodPost, f.Action, strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin == "" {
		u, _ := url.Parse(f.Action)
		origin = u.Scheme + "://" + u.Host
	}
	if origin != "-" {
		req.Header.Set("Origin", origin)
	}
	b.SimHeaders(req, decision)
	resp, err := b.Client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// Consent opens u (the app's authorize endpoint, or a re-authorisation link whose page it confirms as a person
// would: the form's POST with the page's origin and the browser's cookie), consents or denies at the simulator
// and returns the callback URL Atlassian redirected to, not yet visited.
func (b *Browser) Consent(tb testing.TB, u, decision string) string {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	b.SimHeaders(req, decision)
	resp, err := b.Client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if f, ok := FormOf(string(body)); ok && resp.StatusCode == http.StatusOK {
		resp = b.Submit(tb, f, f.Ticket, f.CSRF, decision, "")
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(loc, "/oauth/callback?") {
		tb.Fatalf("GET %s = %d (Location %q), want a redirect to the callback; body: %.500s", u, resp.StatusCode, loc, body)
	}
	return loc
}

// APIKey is the API key a callback's success page shows, or "".
func APIKey(body string) string {
	if m := reAPIKey.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// Connect runs the whole flow at the app's base URL (consent accepted, the callback followed) and returns the
// API key the success page shows.
func (b *Browser) Connect(tb testing.TB, base string) string {
	tb.Helper()
	p := b.Get(tb, b.Consent(tb, base+"/oauth/authorize", "accept"))
	if p.Status != http.StatusOK || p.Key == "" {
		tb.Fatalf("callback = %d %q without an API key: %.500s", p.Status, p.Reason, p.Body)
	}
	return p.Key
}

// Cookie is the value of the browser's cookie name for base, or "".
func (b *Browser) Cookie(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// Page is a page of the app's OAuth flow as a browser got it: the outcome's reason (its data-reason attribute)
// and the API key a success page shows, if any.
type Page struct {
	Status int
	Header http.Header
	Body   string
	Reason string
	Key    string
}

var reReason = regexp.MustCompile(`data-reason="([a-z_]+)"`)

// Get requests u (a callback URL, a re-authorisation link) with the header's name/value pairs and returns the
// page.
func (b *Browser) Get(tb testing.TB, u string, header ...string) Page {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return Page{Status: resp.StatusCode, Header: resp.Header, Body: string(body), Reason: Reason(string(body)), Key: APIKey(string(body))}
}

// Reason is the outcome a page of the flow states (its data-reason attribute), or "".
func Reason(body string) string {
	if m := reReason.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}
