package connectorsapi

import (
	"time"

	"jiraexport/shared/connectors"
)

// Request and response shapes. They mirror openapi.yaml; a test validates every response against it.

type scheduleIn struct {
	Expression *string `json:"expression"`
	Timezone   *string `json:"timezone"`
}

type attachmentsIn struct {
	Enabled    *bool     `json:"enabled"`
	MaxBytes   *int64    `json:"maxBytes"`
	MediaTypes *[]string `json:"mediaTypes"`
}

type includeIn struct {
	Comments    *bool          `json:"comments"`
	Changelog   *bool          `json:"changelog"`
	Attachments *attachmentsIn `json:"attachments"`
	People      *string        `json:"people"`
	Worklogs    *bool          `json:"worklogs"`
}

// connectorIn is a create, replace or merge-patch body. Pointers tell "absent" from "zero".
type connectorIn struct {
	Name     *string     `json:"name"`
	SiteID   *string     `json:"siteId"`
	JQL      *string     `json:"jql"`
	Schedule *scheduleIn `json:"schedule"`
	Enabled  *bool       `json:"enabled"`
	Include  *includeIn  `json:"include"`
	Formats  *[]string   `json:"formats"`
	Census   *int        `json:"censusIntervalHours"`
}

// apply overlays the fields present in in onto spec.
func (in *connectorIn) apply(spec *connectors.Spec) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	setb := func(dst *bool, src *bool) {
		if src != nil {
			*dst = *src
		}
	}
	set(&spec.Name, in.Name)
	set(&spec.SiteID, in.SiteID)
	set(&spec.JQL, in.JQL)
	if in.Schedule != nil {
		set(&spec.Schedule.Expression, in.Schedule.Expression)
		set(&spec.Schedule.Timezone, in.Schedule.Timezone)
	}
	setb(&spec.Enabled, in.Enabled)
	if in.Include != nil {
		setb(&spec.Include.Comments, in.Include.Comments)
		setb(&spec.Include.Changelog, in.Include.Changelog)
		set(&spec.Include.People, in.Include.People)
		setb(&spec.Include.Worklogs, in.Include.Worklogs)
		if a := in.Include.Attachments; a != nil {
			setb(&spec.Include.Attachments.Enabled, a.Enabled)
			if a.MaxBytes != nil {
				spec.Include.Attachments.MaxBytes = *a.MaxBytes
			}
			if a.MediaTypes != nil {
				spec.Include.Attachments.MediaTypes = append([]string{}, *a.MediaTypes...)
			}
		}
	}
	if in.Formats != nil {
		spec.Formats = append([]string{}, *in.Formats...)
	}
	if in.Census != nil {
		spec.CensusIntervalHours = *in.Census
	}
}

// newSpec is the spec a create or replace body describes: absent optional fields take their defaults.
func (in *connectorIn) newSpec() connectors.Spec {
	spec := connectors.Spec{Enabled: true, CensusIntervalHours: connectors.DefaultCensusIntervalHours}
	in.apply(&spec)
	return spec
}

type runSummaryOut struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt"`
}

type connectorOut struct {
	ID          string               `json:"id"`
	Name        string               `json:"name"`
	SiteID      string               `json:"siteId"`
	JQL         string               `json:"jql"`
	Schedule    *connectors.Schedule `json:"schedule"`
	Enabled     bool                 `json:"enabled"`
	Include     connectors.Include   `json:"include"`
	Formats     []string             `json:"formats"`
	Census      int                  `json:"censusIntervalHours"`
	ETag        string               `json:"etag"`
	CreatedAt   time.Time            `json:"createdAt"`
	UpdatedAt   time.Time            `json:"updatedAt"`
	NextRunAt   *time.Time           `json:"nextRunAt"`
	ActiveRunID *string              `json:"activeRunId"`
	LastRun     *runSummaryOut       `json:"lastRun"`
}

func connectorView(c *connectors.Connector) connectorOut {
	out := connectorOut{
		ID: c.ID, Name: c.Spec.Name, SiteID: c.Spec.SiteID, JQL: c.Spec.JQL,
		Enabled: c.Spec.Enabled, Include: c.Spec.Include, Formats: c.Spec.Formats, ETag: c.ETag(),
		Census:    c.Spec.CensusIntervalHours,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, NextRunAt: c.NextRunAt,
	}
	if c.Scheduled() {
		sched := c.Spec.Schedule
		out.Schedule = &sched
	}
	if out.Census == 0 {
		out.Census = connectors.DefaultCensusIntervalHours
	}
	if out.Formats == nil {
		out.Formats = []string{}
	}
	if out.Include.Attachments.MediaTypes == nil {
		out.Include.Attachments.MediaTypes = []string{}
	}
	if out.Include.People == "" {
		out.Include.People = connectors.PeopleDisplayName
	}
	if c.ActiveRunID != "" {
		out.ActiveRunID = &c.ActiveRunID
	}
	if c.LastRun != nil {
		out.LastRun = &runSummaryOut{ID: c.LastRun.ID, Status: string(c.LastRun.Status), CreatedAt: c.LastRun.CreatedAt, FinishedAt: c.LastRun.FinishedAt}
	}
	return out
}

type runOut struct {
	ID           string                `json:"id"`
	ConnectorID  string                `json:"connectorId"`
	Status       string                `json:"status"`
	Phase        string                `json:"phase"`
	Trigger      string                `json:"trigger"`
	Counters     connectors.Counters   `json:"counters"`
	Errors       []connectors.RunError `json:"errors"`
	CreatedAt    time.Time             `json:"createdAt"`
	UpdatedAt    time.Time             `json:"updatedAt"`
	StartedAt    *time.Time            `json:"startedAt"`
	FinishedAt   *time.Time            `json:"finishedAt"`
	CancelReason *string               `json:"cancelReason"`
	PauseReason  *string               `json:"pauseReason"`
	ResumeAfter  *time.Time            `json:"resumeAfter"`
	Invocations  int64                 `json:"invocations"`
}

func runView(r *connectors.Run) runOut {
	out := runOut{ID: r.ID, ConnectorID: r.ConnectorID, Status: string(r.Status), Phase: r.Phase, Trigger: r.Trigger,
		Counters: r.Counters, Errors: r.Errors, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
	if out.Errors == nil {
		out.Errors = []connectors.RunError{}
	}
	if r.CancelReason != "" {
		out.CancelReason = &r.CancelReason
	}
	if r.Status == connectors.RunPaused {
		// Reason and resume time describe a pause; a run that went on keeps neither.
		if r.PauseReason != "" {
			out.PauseReason = &r.PauseReason
		}
		out.ResumeAfter = r.ResumeAfter
	}
	out.Invocations = r.Invocations
	return out
}

type page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}

func newPage[T any](items []T, next string) page[T] {
	p := page[T]{Items: items}
	if p.Items == nil {
		p.Items = []T{}
	}
	if next != "" {
		p.NextCursor = &next
	}
	return p
}
