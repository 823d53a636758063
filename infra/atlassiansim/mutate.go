package atlassiansim

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned by the mutation API for an unknown site, project, issue or user.
var ErrNotFound = errors.New("atlassiansim: not found")

// ErrInvalid is returned by the mutation API for a change it cannot make.
var ErrInvalid = errors.New("atlassiansim: invalid change")

// IssueChange describes an edit; nil fields are left alone. Every change bumps `updated` to the clock's now and
// records a changelog entry, as a real edit does.
type IssueChange struct {
	Summary     *string   `json:"summary,omitempty"`
	Status      *string   `json:"status,omitempty"`
	Labels      *[]string `json:"labels,omitempty"`
	Assignee    *string   `json:"assignee,omitempty"` // account id, "" to unassign
	Description *string   `json:"description,omitempty"`
	// AddComment adds a comment with this text (by Author, or the reporter).
	AddComment *string `json:"addComment,omitempty"`
	// StoryPoints sets the story point estimate (customfield_10016); a negative value clears it.
	StoryPoints *float64 `json:"storyPoints,omitempty"`
	// AddWorklog logs this many seconds of work, started now.
	AddWorklog *int64 `json:"addWorklog,omitempty"`
	// AddAttachment attaches a generated file (at most 4 added per issue).
	AddAttachment *NewAttachment `json:"addAttachment,omitempty"`
	// RemoveAttachment removes an attachment of the issue by id; its content and media links then answer 404.
	RemoveAttachment *int64 `json:"removeAttachment,omitempty"`
	// Author is the account that makes the change; default the issue's reporter.
	Author string `json:"author,omitempty"`
}

// NewAttachment is a file added by a mutation; its bytes are generated from the seed like every attachment's.
type NewAttachment struct {
	Filename string `json:"filename"`
	MimeType string `json:"mimeType"`
	Size     int64  `json:"size"`
}

// IssueRef identifies an issue after a mutation.
type IssueRef struct {
	CloudID string    `json:"cloudId"`
	ID      string    `json:"id"`
	Key     string    `json:"key"`
	Updated time.Time `json:"updated"`
}

func (s *Server) lookupLocked(cloudID, idOrKey string) (*site, *issue, error) {
	st := s.data.siteByID[cloudID]
	if st == nil {
		return nil, nil, fmt.Errorf("site %q: %w", cloudID, ErrNotFound)
	}
	n, ok := st.lookup(idOrKey)
	if !ok || st.deleted(n) {
		return st, nil, fmt.Errorf("issue %q: %w", idOrKey, ErrNotFound)
	}
	return st, st.materialize(n), nil
}

// reindexLocked records a change for the eventually consistent index: search keeps seeing the state it saw
// before this change until ConsistencyDelay has passed.
func (s *Server) reindexLocked(is *issue, now time.Time) {
	is.prev = is.indexView(now, s.cfg.ConsistencyDelay)
	if is.deleted {
		is.cur = nil
	} else {
		is.cur = is.index()
	}
	is.changedAt = now
}

func textDoc(s string) map[string]any {
	return map[string]any{"type": "doc", "version": 1, "content": []any{
		map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": s}}}}}
}

func (s *Server) applyLocked(st *site, is *issue, ch IssueChange, now time.Time) error {
	author := ch.Author
	if author == "" {
		author = is.reporter
	}
	if !st.members[author] {
		return fmt.Errorf("author %q: %w", author, ErrNotFound)
	}
	// Validate before changing anything: a refused change leaves the issue as it was.
	if ch.Status != nil && !slices.Contains(statuses, *ch.Status) {
		return fmt.Errorf("status %q: %w", *ch.Status, ErrNotFound)
	}
	if ch.Assignee != nil && *ch.Assignee != "" && !st.members[*ch.Assignee] {
		return fmt.Errorf("assignee %q: %w", *ch.Assignee, ErrNotFound)
	}
	if r := ch.RemoveAttachment; r != nil && !slices.ContainsFunc(is.attachments, func(a *attachment) bool { return a.id == *r }) {
		return fmt.Errorf("attachment %d: %w", *r, ErrNotFound)
	}
	addIdx := -1
	if a := ch.AddAttachment; a != nil {
		for i := 3; i < largeAttachmentIndex && addIdx < 0; i++ {
			if id := attachmentID(is.n, i); !st.usedAttachment[id] && !slices.ContainsFunc(is.attachments, func(x *attachment) bool { return x.id == id }) {
				addIdx = i
			}
		}
		if addIdx < 0 || a.Filename == "" || a.Size < 0 {
			return fmt.Errorf("attachment %q (at most 4 added per issue, a file name, a size ≥ 0): %w", a.Filename, ErrInvalid)
		}
	}
	if ch.AddWorklog != nil && *ch.AddWorklog <= 0 {
		return fmt.Errorf("worklog of %d s: %w", *ch.AddWorklog, ErrInvalid)
	}
	h := &history{author: author, created: now}
	if ch.Summary != nil {
		h.items = append(h.items, changeItem{Field: "summary", FieldType: "jira", FieldID: "summary", FromString: is.summary,
			ToString: *ch.Summary, hasFromString: true, hasToString: true})
		is.summary = *ch.Summary
	}
	if ch.Status != nil {
		h.items = append(h.items, statusItem(is.status, *ch.Status))
		if *ch.Status == "Done" && is.status != "Done" {
			h.items = append(h.items, changeItem{Field: "resolution", FieldType: "jira", FieldID: "resolution",
				To: "10000", ToString: "Done", hasTo: true, hasToString: true})
		} else if *ch.Status != "Done" && is.status == "Done" {
			h.items = append(h.items, changeItem{Field: "resolution", FieldType: "jira", FieldID: "resolution",
				From: "10000", FromString: "Done", hasFrom: true, hasFromString: true})
		}
		is.status = *ch.Status
	}
	if ch.Labels != nil {
		h.items = append(h.items, changeItem{Field: "labels", FieldType: "jira", FieldID: "labels",
			FromString: strings.Join(is.labels, " "), ToString: strings.Join(*ch.Labels, " "), hasFromString: true, hasToString: true})
		is.labels = append([]string(nil), (*ch.Labels)...)
	}
	if ch.Assignee != nil {
		h.items = append(h.items, st.userItem("assignee", "assignee", is.assignee, *ch.Assignee))
		is.assignee = *ch.Assignee
	}
	if ch.Description != nil {
		h.items = append(h.items, changeItem{Field: "description", FieldType: "jira", FieldID: "description",
			FromString: adfText(is.description), ToString: *ch.Description, hasFromString: is.description != nil, hasToString: true})
		is.description = textDoc(*ch.Description) // replaced, never edited in place: rendered bodies may share it
	}
	if ch.AddComment != nil {
		is.comments = append(is.comments, &comment{id: st.nextMutID(now, is.n), author: author, updateAuthor: author,
			body: textDoc(*ch.AddComment), created: now, updated: now})
	}
	if ch.StoryPoints != nil {
		it := changeItem{Field: "Story point estimate", FieldType: "custom", FieldID: "customfield_10016"}
		if p := is.custom.storyPoints; p != nil {
			it.FromString, it.hasFromString = strconv.FormatFloat(*p, 'f', -1, 64), true
		}
		is.custom.storyPoints = nil
		if v := *ch.StoryPoints; v >= 0 {
			is.custom.storyPoints = &v
			it.ToString, it.hasToString = strconv.FormatFloat(v, 'f', -1, 64), true
		}
		h.items = append(h.items, it)
	}
	if ch.AddWorklog != nil {
		w := &worklog{id: st.nextMutID(now, is.n), author: author, started: now, created: now, updated: now, seconds: *ch.AddWorklog}
		before := is.timeSpent()
		is.worklogs = append(is.worklogs, w)
		if is.estimate > 0 {
			is.remaining = max(0, is.remaining-w.seconds)
		}
		it := changeItem{Field: "timespent", FieldType: "jira", FieldID: "timespent", To: strconv.FormatInt(before+w.seconds, 10),
			ToString: strconv.FormatInt(before+w.seconds, 10), hasTo: true, hasToString: true}
		if before > 0 {
			it.From, it.FromString, it.hasFrom, it.hasFromString = strconv.FormatInt(before, 10), strconv.FormatInt(before, 10), true, true
		}
		wid := strconv.FormatInt(w.id, 10)
		h.items = append(h.items, it, changeItem{Field: "WorklogId", FieldType: "jira", To: wid, ToString: wid, hasTo: true, hasToString: true})
	}
	if ch.AddAttachment != nil {
		idx := addIdx
		mt := ch.AddAttachment.MimeType
		if mt == "" {
			mt = "application/octet-stream"
		}
		a := &attachment{id: attachmentID(is.n, idx), issue: is, filename: ch.AddAttachment.Filename, mimeType: mt,
			size: ch.AddAttachment.Size, author: author, created: now, seed: splitmix(st.seed ^ uint64(attachmentID(is.n, idx)))}
		st.usedAttachment[a.id] = true // an attachment id is never reused, even after removal
		is.attachments = append(is.attachments, a)
		aid := strconv.FormatInt(a.id, 10)
		h.items = append(h.items, changeItem{Field: "Attachment", FieldType: "jira", FieldID: "attachment",
			To: aid, ToString: a.filename, hasTo: true, hasToString: true})
	}
	if ch.RemoveAttachment != nil {
		i := slices.IndexFunc(is.attachments, func(a *attachment) bool { return a.id == *ch.RemoveAttachment })
		a := is.attachments[i]
		st.usedAttachment[a.id] = true
		is.attachments = slices.Delete(slices.Clone(is.attachments), i, i+1)
		aid := strconv.FormatInt(a.id, 10)
		h.items = append(h.items, changeItem{Field: "Attachment", FieldType: "jira", FieldID: "attachment",
			From: aid, FromString: a.filename, hasFrom: true, hasFromString: true})
	}
	if len(h.items) > 0 {
		h.id = st.nextMutID(now, is.n)
		is.histories = append(is.histories, h)
	}
	is.updated = now
	s.reindexLocked(is, now)
	return nil
}

// UpdateIssue edits an issue.
func (s *Server) UpdateIssue(cloudID, idOrKey string, ch IssueChange) (IssueRef, error) {
	now := s.clock.Now().Truncate(time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, is, err := s.lookupLocked(cloudID, idOrKey)
	if err != nil {
		return IssueRef{}, err
	}
	if err := s.applyLocked(st, is, ch, now); err != nil {
		return IssueRef{}, err
	}
	return IssueRef{cloudID, strconv.FormatInt(is.id, 10), is.key, is.updated}, nil
}

// CreateIssue adds an issue to a project, with the change's fields (summary defaults to "New issue").
func (s *Server) CreateIssue(cloudID, projectKey string, ch IssueChange) (IssueRef, error) {
	now := s.clock.Now().Truncate(time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.data.siteByID[cloudID]
	if st == nil {
		return IssueRef{}, fmt.Errorf("site %q: %w", cloudID, ErrNotFound)
	}
	var p *project
	for _, x := range st.projects {
		if strings.EqualFold(x.key, projectKey) {
			p = x
		}
	}
	if p == nil {
		return IssueRef{}, fmt.Errorf("project %q: %w", projectKey, ErrNotFound)
	}
	reporter := ch.Author
	if reporter == "" {
		for _, u := range s.data.users {
			if st.members[u.AccountID] && u.CanConsent {
				reporter = u.AccountID
				break
			}
		}
	}
	if !st.members[reporter] {
		return IssueRef{}, fmt.Errorf("author %q: %w", reporter, ErrNotFound)
	}
	n := int32(len(st.skels))
	st.skels = append(st.skels, skel{created: now.UnixMilli(), updated: now.UnixMilli(), parent: -1, assignee: -1, reporter: -1})
	p.nums = append(p.nums, n)
	is := &issue{n: n, id: 10000 + int64(n), key: p.key + "-" + strconv.Itoa(len(p.nums)), project: p, issueType: "Task",
		status: statuses[0], priority: "Medium", summary: "New issue", reporter: reporter, creator: reporter,
		created: now, updated: now, parent: -1, custom: customValues{severity: -1}, mutated: true}
	st.live[n] = is
	is.changedAt = now // prev stays nil: the index does not know the issue yet
	if err := s.applyLocked(st, is, ch, now); err != nil {
		return IssueRef{}, err
	}
	is.histories = nil // a new issue has no history
	is.prev = nil
	return IssueRef{cloudID, strconv.FormatInt(is.id, 10), is.key, is.updated}, nil
}

// DeleteIssue deletes an issue: it disappears from search (after the consistency delay) and answers 404.
func (s *Server) DeleteIssue(cloudID, idOrKey string) error {
	now := s.clock.Now().Truncate(time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, is, err := s.lookupLocked(cloudID, idOrKey)
	if err != nil {
		return err
	}
	is.deleted = true
	s.reindexLocked(is, now)
	return nil
}

// MoveIssue moves an issue to another project of the same site. It gets a new key; the old key keeps resolving
// (as Jira's does), the id is unchanged.
func (s *Server) MoveIssue(cloudID, idOrKey, toProjectKey string) (IssueRef, error) {
	now := s.clock.Now().Truncate(time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, is, err := s.lookupLocked(cloudID, idOrKey)
	if err != nil {
		return IssueRef{}, err
	}
	var p *project
	for _, x := range st.projects {
		if strings.EqualFold(x.key, toProjectKey) {
			p = x
		}
	}
	if p == nil {
		return IssueRef{}, fmt.Errorf("project %q: %w", toProjectKey, ErrNotFound)
	}
	if p == is.project {
		return IssueRef{cloudID, strconv.FormatInt(is.id, 10), is.key, is.updated}, nil
	}
	p.nums = append(p.nums, is.n)
	newKey := p.key + "-" + strconv.Itoa(len(p.nums))
	h := &history{id: st.nextMutID(now, is.n), author: is.reporter, created: now, items: []changeItem{
		{Field: "Key", FieldType: "jira", FieldID: "issuekey", FromString: is.key, ToString: newKey, hasFromString: true, hasToString: true},
		{Field: "project", FieldType: "jira", FieldID: "project", From: strconv.FormatInt(is.project.id, 10), FromString: is.project.name,
			To: strconv.FormatInt(p.id, 10), ToString: p.name, hasFrom: true, hasTo: true, hasFromString: true, hasToString: true},
	}}
	is.histories = append(is.histories, h)
	is.project, is.key, is.updated = p, newKey, now
	s.reindexLocked(is, now)
	return IssueRef{cloudID, strconv.FormatInt(is.id, 10), is.key, is.updated}, nil
}

// SetProjectPermission grants (allow) or removes a user's browse permission on a project. Without it the
// project's issues vanish from search and answer 404, exactly like issues that do not exist.
func (s *Server) SetProjectPermission(cloudID, projectKey, accountID string, allow bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.data.siteByID[cloudID]
	if st == nil {
		return fmt.Errorf("site %q: %w", cloudID, ErrNotFound)
	}
	if s.data.userByID[accountID] == nil {
		return fmt.Errorf("user %q: %w", accountID, ErrNotFound)
	}
	for _, p := range st.projects {
		if strings.EqualFold(p.key, projectKey) {
			if allow {
				delete(p.denied, accountID)
			} else {
				p.denied[accountID] = true
			}
			return nil
		}
	}
	return fmt.Errorf("project %q: %w", projectKey, ErrNotFound)
}
