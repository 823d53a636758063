package oauthflow

import (
	"html/template"
	"net/http"
)

// Reason names an outcome. It is logged, and written into the page as data-reason so tests (and support) can tell
// outcomes apart without parsing prose.
type Reason string

// The outcomes of the two endpoints.
const (
	ReasonConnected       Reason = "connected"
	ReasonReauthorized    Reason = "reauthorized"
	ReasonDenied          Reason = "access_denied"
	ReasonAtlassianError  Reason = "atlassian_error"
	ReasonBadRequest      Reason = "bad_request"
	ReasonNoCookie        Reason = "state_missing_cookie"
	ReasonForeignCookie   Reason = "state_foreign_cookie"
	ReasonStateUsed       Reason = "state_used"
	ReasonStateExpired    Reason = "state_expired"
	ReasonStateUnknown    Reason = "state_unknown"
	ReasonReauthUnknown   Reason = "reauth_link_unknown"
	ReasonReauthUsed      Reason = "reauth_link_used"
	ReasonReauthExpired   Reason = "reauth_link_expired"
	ReasonReauthConfirm   Reason = "reauth_confirm"
	ReasonForgedForm      Reason = "reauth_form_rejected"
	ReasonAccountMismatch Reason = "reauth_account_mismatch"
	ReasonAccountUnknown  Reason = "account_unreadable"
	ReasonConnectionGone  Reason = "connection_gone"
	ReasonExchangeFailed  Reason = "exchange_failed"
	ReasonNoOfflineAccess Reason = "no_offline_access"
	ReasonResourcesFailed Reason = "resources_failed"
	ReasonNoJiraSite      Reason = "no_jira_site"
	ReasonNotFound        Reason = "not_found"
	ReasonInternal        Reason = "internal"
)

// page is what one outcome shows. Messages are fixed text: nothing from the request is ever reflected.
type page struct {
	status  int
	title   string
	message string
	// retry: the fix is to start again from the authorize link.
	retry bool
}

var pages = map[Reason]page{
	ReasonConnected:    {http.StatusOK, "Connected to Jira", "Your Jira Cloud sites are connected.", false},
	ReasonReauthorized: {http.StatusOK, "Connection renewed", "Your connection is authorised again. Its connectors and API keys are unchanged and exports resume at their next scheduled run.", false},
	ReasonDenied: {http.StatusForbidden, "Access not granted",
		"You declined access at Atlassian, so nothing was connected and nothing was stored.", true},
	ReasonAtlassianError: {http.StatusBadGateway, "Atlassian refused the request",
		"Atlassian returned an error instead of an authorisation. Nothing was connected.", true},
	ReasonBadRequest: {http.StatusBadRequest, "Invalid request",
		"This page was opened with missing or malformed parameters.", true},
	ReasonNoCookie: {http.StatusBadRequest, "Session not found",
		"This browser has no record of starting the authorisation (its cookie is missing: cookies blocked, a different browser, or the link was opened from elsewhere). For your safety nothing was connected.", true},
	ReasonForeignCookie: {http.StatusBadRequest, "Started in another browser session",
		"This authorisation was started in a different browser session than the one that finished it. For your safety nothing was connected.", true},
	ReasonStateUsed: {http.StatusBadRequest, "Link already used",
		"This authorisation response was already used. Each one works once; nothing more was done.", true},
	ReasonStateExpired: {http.StatusBadRequest, "Authorisation expired",
		"More than 10 minutes passed between starting and finishing the authorisation. Nothing was connected.", true},
	ReasonStateUnknown: {http.StatusBadRequest, "Unknown authorisation",
		"This authorisation response does not match any request we started, or is too old. Nothing was connected.", true},
	ReasonReauthUnknown: {http.StatusBadRequest, "Invalid re-authorisation link",
		"This re-authorisation link is not valid. Ask for a new one through the API with your API key.", false},
	ReasonReauthUsed: {http.StatusBadRequest, "Re-authorisation link already used",
		"Each re-authorisation link works once. Ask for a new one through the API with your API key.", false},
	ReasonReauthExpired: {http.StatusBadRequest, "Re-authorisation link expired",
		"Re-authorisation links are valid for 10 minutes. Ask for a new one through the API with your API key.", false},
	ReasonReauthConfirm: {http.StatusOK, "Renew a Jira connection?",
		"This link renews the authorisation of an existing connection to the Jira sites below. Continue only if you asked for this link. At Atlassian, log in as the same Atlassian account that made the connection: consent from any other account is refused and discarded.", false},
	ReasonForgedForm: {http.StatusForbidden, "Request not accepted",
		"This confirmation did not come from the re-authorisation page in this browser (or that page is more than 10 minutes old). Nothing was done: open the re-authorisation link again.", false},
	ReasonAccountMismatch: {http.StatusForbidden, "Different Atlassian account",
		"The Atlassian account that just gave consent is not the one this connection was made with. Nothing was changed, and the authorisation just given was discarded without being stored. To renew the connection, use the account that made it; to connect this account, make a new connection. If you did not expect this page, you can remove the app's access in your Atlassian account settings under Connected apps.", false},
	ReasonAccountUnknown: {http.StatusBadGateway, "Account could not be checked",
		"Atlassian did not tell us which account gave consent, so the authorisation could not be checked. Nothing was stored.", true},
	ReasonConnectionGone: {http.StatusConflict, "Connection no longer exists",
		"The connection you were re-authorising was disconnected or erased. Nothing was stored.", false},
	ReasonExchangeFailed: {http.StatusBadGateway, "Authorisation could not be completed",
		"Atlassian did not accept the authorisation code (it may have expired or been used). Nothing was connected.", true},
	ReasonNoOfflineAccess: {http.StatusBadGateway, "Authorisation incomplete",
		"Atlassian did not grant offline access, which scheduled exports need. Nothing was connected.", true},
	ReasonResourcesFailed: {http.StatusBadGateway, "Sites could not be read",
		"Atlassian did not tell us which sites you granted access to. Nothing was connected.", true},
	ReasonNoJiraSite: {http.StatusUnprocessableEntity, "No Jira site",
		"The access you granted covers no Jira Cloud site. Nothing was connected.", true},
	ReasonNotFound: {http.StatusNotFound, "Not found", "There is nothing here.", false},
	ReasonInternal: {http.StatusInternalServerError, "Something went wrong",
		"The authorisation could not be completed because of a problem on our side. Nothing was connected.", true},
}

type pageData struct {
	Reason       Reason
	Title        string
	Message      string
	Retry        bool
	AuthorizeURL string
	APIKey       string
	APIBase      string
	ConnectionID string
	Sites        []siteView
	// FormAction, Ticket and CSRF make the re-authorisation page's form.
	FormAction, Ticket, CSRF string
}

type siteView struct{ Name, URL string }

// The template links only to this API's own authorize endpoint; CSP forbids everything but inline style.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;line-height:1.5}
code,pre{background:#f4f4f4;padding:.15rem .3rem;border-radius:4px}pre{padding:.75rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.key{font-size:1.1rem;border:2px solid #0052cc}.warn{color:#a33}</style></head>
<body><main data-reason="{{.Reason}}">
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{- if .Sites}}
<p>Sites:</p><ul>{{range .Sites}}<li>{{.Name}} ({{.URL}})</li>{{end}}</ul>
{{- end}}
{{- if .CSRF}}
<form method="post" action="{{.FormAction}}">
<input type="hidden" name="reauth" value="{{.Ticket}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit">Continue to Atlassian</button>
</form>
{{- end}}
{{- if .APIKey}}
<h2>Your API key</h2>
<p class="warn">It is shown only this once and we store only a hash of it: copy it now into your password manager or secret store.</p>
<pre class="key" id="api-key">{{.APIKey}}</pre>
<p>Use it as a bearer token with the connectors API, for example:</p>
<pre>curl -H "Authorization: Bearer $JIRAEXPORT_API_KEY" {{.APIBase}}/v1/connection</pre>
<p>Connection id: <code>{{.ConnectionID}}</code>. You can create more keys and revoke any of them through the API.</p>
{{- end}}
{{- if .Retry}}
<p><a href="{{.AuthorizeURL}}">Connect again</a> (to renew an existing connection instead, ask the API for a new re-authorisation link with your API key).</p>
{{- end}}
</main></body></html>
`))
