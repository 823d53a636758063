package jira

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The calls the export makes. Each answer keeps Jira's objects as raw JSON: the export scrubs and stores them as
// they came, so a field this package does not know is never lost.

// Page-size limits Jira documents (and silently lowers requests to).
const (
	// SearchMaxIDs is the largest /search/jql page for requests of id/key only (the census).
	SearchMaxIDs = 5000
	// SearchMaxFull is the largest page when issues carry descriptions, comments, *all or an expanded changelog.
	SearchMaxFull = 50
	// SearchMaxFields is the largest page for other field sets.
	SearchMaxFields = 100
	// CommentsMax and ChangelogMax, WorklogsMax are the largest pages of an issue's children.
	CommentsMax  = 100
	ChangelogMax = 100
	WorklogsMax  = 5000
	// ChangelogBulkIssues is the most issues one /changelog/bulkfetch takes; ChangelogBulkMax its largest page.
	ChangelogBulkIssues = 1000
	ChangelogBulkMax    = 10000
	// BulkFetchMax is the most issues one /issue/bulkfetch takes.
	BulkFetchMax = 100
)

// SearchRequest is one POST /rest/api/3/search/jql.
type SearchRequest struct {
	JQL           string   `json:"jql"`
	Fields        []string `json:"fields,omitempty"`
	Expand        string   `json:"expand,omitempty"`
	MaxResults    int      `json:"maxResults,omitempty"`
	NextPageToken string   `json:"nextPageToken,omitempty"`
}

// SearchPage is one page of search results.
type SearchPage struct {
	Issues        []json.RawMessage          `json:"issues"`
	NextPageToken string                     `json:"nextPageToken"`
	IsLast        bool                       `json:"isLast"`
	Names         map[string]string          `json:"names"`
	Schema        map[string]json.RawMessage `json:"schema"`
}

// Search runs one page of an enhanced JQL search. A refused NextPageToken fails with ErrCursorExpired.
func (c *Client) Search(ctx context.Context, cloudID string, req SearchRequest) (*SearchPage, error) {
	var out SearchPage
	err := c.do(ctx, cloudID, call{
		method: http.MethodPost, path: "/rest/api/3/search/jql", body: req, safe: true,
		cursor: req.NextPageToken != "", objects: func() int { return len(out.Issues) },
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// IssueID is an issue as the id census sees it.
type IssueID struct {
	ID string `json:"id"`
}

// CensusPage is one page of ids of the issues jql matches (fields=id, the largest pages Jira gives).
func (c *Client) CensusPage(ctx context.Context, cloudID, jql, nextPageToken string) (ids []string, next string, err error) {
	var out struct {
		Issues        []IssueID `json:"issues"`
		NextPageToken string    `json:"nextPageToken"`
	}
	err = c.do(ctx, cloudID, call{
		method: http.MethodPost, path: "/rest/api/3/search/jql", safe: true, cursor: nextPageToken != "",
		body:    SearchRequest{JQL: jql, Fields: []string{"id"}, MaxResults: SearchMaxIDs, NextPageToken: nextPageToken},
		objects: func() int { return len(out.Issues) },
	}, &out)
	if err != nil {
		return nil, "", err
	}
	ids = make([]string, 0, len(out.Issues))
	for _, is := range out.Issues {
		ids = append(ids, is.ID)
	}
	return ids, out.NextPageToken, nil
}

// BulkFetch returns issues by id (POST /rest/api/3/issue/bulkfetch, at most BulkFetchMax); ids Jira cannot show
// are simply missing from the answer.
func (c *Client) BulkFetch(ctx context.Context, cloudID string, ids, fields []string, expand string) ([]json.RawMessage, error) {
	if len(ids) > BulkFetchMax {
		return nil, fmt.Errorf("jira: bulkfetch of %d issues, at most %d", len(ids), BulkFetchMax)
	}
	body := map[string]any{"issueIdsOrKeys": ids, "fields": fields}
	if expand != "" {
		body["expand"] = []string{expand}
	}
	var out struct {
		Issues []json.RawMessage `json:"issues"`
	}
	err := c.do(ctx, cloudID, call{method: http.MethodPost, path: "/rest/api/3/issue/bulkfetch", body: body, safe: true,
		objects: func() int { return len(out.Issues) }}, &out)
	return out.Issues, err
}

// ChildPage is a startAt-paged list of an issue's children (comments, changelog entries, worklogs).
type ChildPage struct {
	StartAt    int               `json:"startAt"`
	MaxResults int               `json:"maxResults"`
	Total      int               `json:"total"`
	IsLast     *bool             `json:"isLast,omitempty"`
	Comments   []json.RawMessage `json:"comments,omitempty"`
	Values     []json.RawMessage `json:"values,omitempty"`
	Worklogs   []json.RawMessage `json:"worklogs,omitempty"`
}

// Items returns the page's children whichever list Jira put them in.
func (p *ChildPage) Items() []json.RawMessage {
	switch {
	case p.Comments != nil:
		return p.Comments
	case p.Worklogs != nil:
		return p.Worklogs
	}
	return p.Values
}

func (c *Client) childPage(ctx context.Context, cloudID, issueID, kind, endpoint string, startAt, max int, extra url.Values) (*ChildPage, error) {
	q := url.Values{"startAt": {strconv.Itoa(startAt)}, "maxResults": {strconv.Itoa(max)}}
	for k, v := range extra {
		q[k] = v
	}
	var out ChildPage
	err := c.do(ctx, cloudID, call{
		method: http.MethodGet, path: "/rest/api/3/issue/" + url.PathEscape(issueID) + "/" + kind, query: q,
		endpoint: endpoint, safe: true, objects: func() int { return len(out.Items()) },
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Comments returns one page of an issue's comments, oldest first (GET /rest/api/3/issue/{id}/comment).
func (c *Client) Comments(ctx context.Context, cloudID, issueID string, startAt int) (*ChildPage, error) {
	return c.childPage(ctx, cloudID, issueID, "comment", "/rest/api/3/issue/{issueIdOrKey}/comment", startAt, CommentsMax,
		url.Values{"orderBy": {"created"}})
}

// Changelog returns one page of an issue's changelog, oldest first (GET /rest/api/3/issue/{id}/changelog).
func (c *Client) Changelog(ctx context.Context, cloudID, issueID string, startAt int) (*ChildPage, error) {
	return c.ChangelogN(ctx, cloudID, issueID, startAt, ChangelogMax)
}

// ChangelogN is Changelog with a page size (at most ChangelogMax): a caller that misses only the oldest n entries
// asks for exactly those, since every entry returned costs a point.
func (c *Client) ChangelogN(ctx context.Context, cloudID, issueID string, startAt, maxResults int) (*ChildPage, error) {
	maxResults = max(1, min(maxResults, ChangelogMax))
	return c.childPage(ctx, cloudID, issueID, "changelog", "/rest/api/3/issue/{issueIdOrKey}/changelog", startAt, maxResults, nil)
}

// Worklogs returns one page of an issue's worklogs (GET /rest/api/3/issue/{id}/worklog).
func (c *Client) Worklogs(ctx context.Context, cloudID, issueID string, startAt int) (*ChildPage, error) {
	return c.childPage(ctx, cloudID, issueID, "worklog", "/rest/api/3/issue/{issueIdOrKey}/worklog", startAt, WorklogsMax, nil)
}

// IssueChangelogs are the histories of one issue in a bulk changelog answer.
type IssueChangelogs struct {
	IssueID   string            `json:"issueId"`
	Histories []json.RawMessage `json:"changeHistories"`
}

// ChangelogBulk returns one page of the changelogs of up to ChangelogBulkIssues issues, oldest first per issue
// (POST /rest/api/3/changelog/bulkfetch); next is "" on the last page. One issue's histories can span pages.
func (c *Client) ChangelogBulk(ctx context.Context, cloudID string, issueIDs []string, nextPageToken string) (logs []IssueChangelogs, next string, err error) {
	if len(issueIDs) > ChangelogBulkIssues {
		return nil, "", fmt.Errorf("jira: changelog bulkfetch of %d issues, at most %d", len(issueIDs), ChangelogBulkIssues)
	}
	body := map[string]any{"issueIdsOrKeys": issueIDs, "maxResults": ChangelogBulkMax}
	if nextPageToken != "" {
		body["nextPageToken"] = nextPageToken
	}
	var out struct {
		Logs          []IssueChangelogs `json:"issueChangeLogs"`
		NextPageToken string            `json:"nextPageToken"`
	}
	err = c.do(ctx, cloudID, call{method: http.MethodPost, path: "/rest/api/3/changelog/bulkfetch", body: body, safe: true,
		cursor: nextPageToken != "", objects: func() int {
			n := 0
			for _, l := range out.Logs {
				n += len(l.Histories)
			}
			return n
		}}, &out)
	if err != nil {
		return nil, "", err
	}
	return out.Logs, out.NextPageToken, nil
}

// Field is one field of GET /rest/api/3/field.
type Field struct {
	ID     string      `json:"id"`
	Key    string      `json:"key,omitempty"`
	Name   string      `json:"name"`
	Custom bool        `json:"custom"`
	Schema FieldSchema `json:"schema"`
}

// FieldSchema is a field's JSON type (type "user", "array" of "user", "option", "date", ...).
type FieldSchema struct {
	Type     string `json:"type,omitempty"`
	Items    string `json:"items,omitempty"`
	System   string `json:"system,omitempty"`
	Custom   string `json:"custom,omitempty"`
	CustomID int64  `json:"customId,omitempty"`
}

// Fields lists the site's fields (GET /rest/api/3/field).
func (c *Client) Fields(ctx context.Context, cloudID string) ([]Field, error) {
	var out []Field
	err := c.do(ctx, cloudID, call{method: http.MethodGet, path: "/rest/api/3/field", safe: true,
		objects: func() int { return 0 }}, &out)
	return out, err
}

// Stream is an open streaming answer: the caller reads Body and must Close it.
type Stream struct {
	Status   int
	Header   http.Header
	Body     io.ReadCloser
	Location string // set for a 3xx: where Jira points (never followed with the bearer)
	cancel   context.CancelFunc
}

// Close releases the answer.
func (s *Stream) Close() error {
	err := s.Body.Close()
	s.cancel()
	return err
}

// GetStream sends GET path (relative to the site's REST root, e.g. /rest/api/3/attachment/content/10001) and
// returns the answer unbuffered, for bodies of any size. A 3xx answer is returned with its Location and an empty
// body: the caller fetches it without the bearer token. timeout bounds the whole transfer (zero: none beyond
// ctx). Failures are classified like every other call's; no retries.
func (c *Client) GetStream(ctx context.Context, cloudID, path, endpoint string, query url.Values, timeout time.Duration) (*Stream, error) {
	cl := call{method: http.MethodGet, path: path, endpoint: endpoint, query: query}
	cctx, cancel := context.WithCancel(ctx)
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, timeout)
	}
	started := c.o.Now()
	resp, err := c.send(cctx, cloudID, cl, nil)
	if err != nil {
		cancel()
		c.observe(cloudID, cl, 0, err, started)
		return nil, err
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc := resp.Header.Get("Location")
		resp.Body.Close()
		c.observe(cloudID, call{method: cl.method, path: cl.path, endpoint: cl.endpoint, objects: func() int { return 1 }}, resp.StatusCode, nil, started)
		return &Stream{Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(http.NoBody), Location: loc, cancel: cancel}, nil
	}
	if err := c.statusError(cl, resp); err != nil {
		resp.Body.Close()
		cancel()
		c.observe(cloudID, cl, resp.StatusCode, err, started)
		return nil, err
	}
	c.observe(cloudID, call{method: cl.method, path: cl.path, endpoint: cl.endpoint, objects: func() int { return 1 }}, resp.StatusCode, nil, started)
	return &Stream{Status: resp.StatusCode, Header: resp.Header, Body: resp.Body, cancel: cancel}, nil
}
