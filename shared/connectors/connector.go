// Package connectors holds a connection's connectors (what to export, from which site, on which schedule) and
// their runs, with the rules that keep them valid, in the single DynamoDB table under pk CONN#<connId>.
//
// A connector's ETag is its item's version `v`, which every write of the item bumps (configuration, run start and
// finish, scheduling), so the ETag changes whenever its representation does and a strong ETag is honest.
// At most one run per connector is active (queued or running); the connector item's activeRun attribute, set in
// the same transaction that creates the run, is the lock.
package connectors

import (
	"crypto/rand"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"jiraexport/shared/problem"
	"jiraexport/shared/schedule"
)

// Limits (documented in the OpenAPI description).
const (
	MaxNameLen            = 100
	MaxJQLLen             = 4000
	MaxConnectors         = 100 // per connection
	MaxMediaTypes         = 20
	MaxMediaTypeLen       = 100
	MaxAttachmentBytes    = 1 << 30 // per attachment
	DefaultAttachmentSize = 10 << 20
	MaxRunErrors          = 20 // errors kept per run, oldest first

	// The id census (deletion and scope-exit detection on incremental runs) runs at most every
	// CensusIntervalHours; it costs about one point per issue in scope, so it is the connector's to pace.
	DefaultCensusIntervalHours = 24
	MinCensusIntervalHours     = 1
	MaxCensusIntervalHours     = 720 // 30 days
)

// Formats returns the accepted output formats (a fresh slice each time, so no caller can change them).
func Formats() []string { return []string{"json", "markdown"} }

// Errors callers branch on.
var (
	ErrNotFound      = errors.New("not found")
	ErrStale         = errors.New("connector changed since it was read")
	ErrActiveRun     = errors.New("connector has an active run")
	ErrTooMany       = errors.New("too many connectors")
	ErrNotActive     = errors.New("connection is not active")
	ErrRunFinished   = errors.New("run already finished")
	ErrInvalidCursor = errors.New("invalid cursor")
)

// Attachments says whether and which attachments are exported.
type Attachments struct {
	Enabled bool `json:"enabled" dynamodbav:"enabled"`
	// MaxBytes skips larger attachments.
	MaxBytes int64 `json:"maxBytes" dynamodbav:"maxBytes"`
	// MediaTypes, when not empty, limits attachments to these types ("image/png" or "image/*").
	MediaTypes []string `json:"mediaTypes" dynamodbav:"mediaTypes"`
}

// Include says what each exported issue carries besides its fields.
type Include struct {
	Comments    bool        `json:"comments" dynamodbav:"comments"`
	Changelog   bool        `json:"changelog" dynamodbav:"changelog"`
	Attachments Attachments `json:"attachments" dynamodbav:"attachments"`
	// People is how a person appears in exported content: PeopleDisplayName (the default) or PeoplePseudonym (a
	// keyed hash under the connection's secret, shared/pseudonym). Never the account id.
	People string `json:"people" dynamodbav:"people,omitempty"`
	// Worklogs exports the worklogs, complete (paged past the ones Jira embeds).
	Worklogs bool `json:"worklogs" dynamodbav:"worklogs,omitempty"`
}

// People modes (Include.People); the same strings as shared/pseudonym.Mode.
const (
	PeopleDisplayName = "displayName"
	PeoplePseudonym   = "pseudonym"
)

// Pseudonyms reports whether people are exported as pseudonyms.
func (i Include) Pseudonyms() bool { return i.People == PeoplePseudonym }

// HasFormat reports whether the connector writes format f ("json", "markdown").
func (s *Spec) HasFormat(f string) bool { return slices.Contains(s.Formats, f) }

// Schedule is a connector's cron or rate expression and the IANA time zone it is read in. An empty expression
// means no schedule: the connector runs only when a run is started through the API.
type Schedule struct {
	Expression string `json:"expression" dynamodbav:"expression"`
	Timezone   string `json:"timezone" dynamodbav:"timezone"`
}

// Spec is what a user sets on a connector.
type Spec struct {
	Name     string
	SiteID   string
	JQL      string
	Schedule Schedule // zero: manual runs only
	Enabled  bool
	Include  Include
	Formats  []string
	// CensusIntervalHours is the least time between two id censuses on incremental runs (a full run always
	// takes one). A stored connector always has it (DefaultCensusIntervalHours unless set); read it through
	// CensusInterval, which also defaults a zero.
	CensusIntervalHours int
}

// Scheduled reports whether the connector has a schedule (otherwise it runs only when started through the API).
func (s *Spec) Scheduled() bool { return s.Schedule.Expression != "" }

// CensusInterval is CensusIntervalHours as a duration (the default when it is zero: a spec built in code).
func (s *Spec) CensusInterval() time.Duration {
	h := s.CensusIntervalHours
	if h <= 0 {
		h = DefaultCensusIntervalHours
	}
	return time.Duration(h) * time.Hour
}

// Connector is a stored connector.
type Connector struct {
	Spec
	ID           string
	ConnectionID string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// NextRunAt is nil when the connector is disabled.
	NextRunAt *time.Time
	// ActiveRunID is the queued or running run, if any.
	ActiveRunID string
	LastRun     *RunSummary
	// Version is the item's `v`, bumped by every write of it; the ETag is derived from it.
	Version int64
}

// ETag is the connector's strong entity tag.
func (c *Connector) ETag() string { return `"` + strconv.FormatInt(c.Version, 10) + `"` }

// ParseETag returns the version an If-Match value names; ok is false for anything this API never issued.
func ParseETag(s string) (version int64, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, false
	}
	n, err := strconv.ParseInt(s[1:len(s)-1], 10, 64)
	return n, err == nil && n > 0
}

// RunSummary is the last run as a connector shows it.
type RunSummary struct {
	ID         string     `dynamodbav:"id"`
	Status     RunStatus  `dynamodbav:"status"`
	CreatedAt  time.Time  `dynamodbav:"createdAt"`
	FinishedAt *time.Time `dynamodbav:"finishedAt,omitempty"`
}

// NewID returns a new connector or run id: a ULID, so ids sort by creation time.
func NewID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// ValidID reports whether s is an id this package could have issued.
func ValidID(s string) bool {
	if len(s) != ulid.EncodedSize {
		return false
	}
	_, err := ulid.ParseStrict(s)
	return err == nil && strings.ToUpper(s) == s
}

// Normalize applies defaults (formats ["json"], attachment size cap, trimmed name and JQL, UTC time zone).
func (s *Spec) Normalize() {
	s.Name = strings.TrimSpace(s.Name)
	s.JQL = strings.TrimSpace(s.JQL)
	s.Schedule.Expression = strings.TrimSpace(s.Schedule.Expression)
	switch {
	case s.Schedule.Expression == "" && s.Schedule.Timezone == "UTC":
		s.Schedule.Timezone = "" // no schedule: nothing to read a time zone for
	case s.Schedule.Expression != "" && s.Schedule.Timezone == "":
		s.Schedule.Timezone = "UTC"
	}
	if len(s.Formats) == 0 {
		s.Formats = []string{"json"}
	}
	if s.Include.People == "" {
		s.Include.People = PeopleDisplayName
	}
	if s.Include.Attachments.Enabled && s.Include.Attachments.MaxBytes == 0 {
		s.Include.Attachments.MaxBytes = DefaultAttachmentSize
	}
	if s.Include.Attachments.MediaTypes == nil {
		s.Include.Attachments.MediaTypes = []string{}
	}
	for i, m := range s.Include.Attachments.MediaTypes {
		s.Include.Attachments.MediaTypes[i] = strings.ToLower(strings.TrimSpace(m))
	}
}

// Validate checks everything that needs no network: lengths, the schedule, formats and attachment rules. The
// site's membership in the connection and the JQL's validity on the site are checked by the caller.
// It returns the parsed schedule when that part is valid (nil for a connector without a schedule).
func (s *Spec) Validate() (*schedule.Schedule, []problem.FieldError) {
	var errs []problem.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, problem.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	switch n := utf8.RuneCountInString(s.Name); {
	case !utf8.ValidString(s.Name):
		add("name", "must be valid UTF-8")
	case n == 0:
		add("name", "is required")
	case n > MaxNameLen:
		add("name", "must be at most %d characters", MaxNameLen)
	case strings.IndexFunc(s.Name, unicode.IsControl) >= 0:
		add("name", "must not contain control characters")
	}
	if s.SiteID == "" {
		add("siteId", "is required")
	} else if len(s.SiteID) > 64 {
		add("siteId", "is not a site of this connection")
	}
	switch {
	case !utf8.ValidString(s.JQL):
		add("jql", "must be valid UTF-8")
	case s.JQL == "":
		add("jql", "is required")
	case utf8.RuneCountInString(s.JQL) > MaxJQLLen:
		add("jql", "must be at most %d characters", MaxJQLLen)
	}
	var sched *schedule.Schedule
	if s.Scheduled() {
		var err error
		if sched, err = schedule.Parse(s.Schedule.Expression, s.Schedule.Timezone); err != nil {
			var se *schedule.Error
			if errors.As(err, &se) {
				add("schedule."+se.Field, "%s", se.Reason)
			} else {
				add("schedule", "is invalid")
			}
		}
	} else if s.Schedule.Timezone != "" {
		add("schedule.expression", "is required when a time zone is given (omit the schedule for manual runs only)")
	}
	if c := s.CensusIntervalHours; c < MinCensusIntervalHours || c > MaxCensusIntervalHours {
		add("censusIntervalHours", "must be between %d and %d", MinCensusIntervalHours, MaxCensusIntervalHours)
	}
	formats := Formats()
	if len(s.Formats) > len(formats) {
		add("formats", "must list each of %s at most once", strings.Join(formats, ", "))
	} else {
		seen := map[string]bool{}
		for i, f := range s.Formats {
			switch {
			case !slices.Contains(formats, f):
				add("formats["+strconv.Itoa(i)+"]", "must be one of %s", strings.Join(formats, ", "))
			case seen[f]:
				add("formats["+strconv.Itoa(i)+"]", "is listed twice")
			}
			seen[f] = true
		}
	}
	if p := s.Include.People; p != "" && p != PeopleDisplayName && p != PeoplePseudonym {
		add("include.people", "must be one of %s, %s", PeopleDisplayName, PeoplePseudonym)
	}
	a := s.Include.Attachments
	if a.MaxBytes < 0 || a.MaxBytes > MaxAttachmentBytes {
		add("include.attachments.maxBytes", "must be between 1 and %d", int64(MaxAttachmentBytes))
	} else if a.Enabled && a.MaxBytes == 0 {
		add("include.attachments.maxBytes", "must be between 1 and %d", int64(MaxAttachmentBytes))
	}
	if len(a.MediaTypes) > MaxMediaTypes {
		add("include.attachments.mediaTypes", "must list at most %d media types", MaxMediaTypes)
	} else {
		for i, m := range a.MediaTypes {
			if !validMediaRange(m) {
				add("include.attachments.mediaTypes["+strconv.Itoa(i)+"]", "must be a media type such as image/png or image/*")
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return sched, nil
}

func validMediaRange(m string) bool {
	if m == "" || len(m) > MaxMediaTypeLen || strings.ContainsAny(m, ";, ") {
		return false
	}
	typ, sub, ok := strings.Cut(m, "/")
	if !ok || typ == "" || sub == "" || typ == "*" {
		return false
	}
	if sub == "*" {
		m = typ + "/x-any"
	}
	mt, params, err := mime.ParseMediaType(m)
	return err == nil && len(params) == 0 && mt == m
}
