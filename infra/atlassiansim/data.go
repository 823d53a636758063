package atlassiansim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // users' time zones must resolve on machines without a zoneinfo database

	"jiraexport/infra/atlassiansim/jql"
)

// User is a seeded Atlassian account. The simulator hands out copies; changing one changes nothing.
type User struct {
	AccountID   string   `json:"accountId"`
	AccountType string   `json:"accountType"` // atlassian, app or unknown
	DisplayName string   `json:"displayName"`
	Email       string   `json:"email,omitempty"`    // empty: hidden by the user's profile visibility
	TimeZone    string   `json:"timeZone,omitempty"` // empty: hidden
	Locale      string   `json:"locale"`
	Active      bool     `json:"active"`
	Sites       []string `json:"sites"`      // cloud ids of the sites the user belongs to
	CanConsent  bool     `json:"canConsent"` // a person who can log in and grant the app access
}

// Site is a seeded Jira Cloud site as the control API describes it.
type Site struct {
	CloudID  string        `json:"cloudId"`
	Name     string        `json:"name"`
	URL      string        `json:"url"`
	Projects []ProjectInfo `json:"projects"`
}

// ProjectInfo describes one project of a site.
type ProjectInfo struct {
	ID     string   `json:"id"`
	Key    string   `json:"key"`
	Name   string   `json:"name"`
	Issues int      `json:"issues"`
	Denied []string `json:"denied,omitempty"` // account ids without browse permission
}

type dataset struct {
	users     []*User
	userByID  map[string]*User
	sites     []*site
	siteByID  map[string]*site
	attByUUID map[string]*attachment
	uuidRand  *rand.Rand // continues the seeded stream for objects created later
}

type site struct {
	cloudID, name, url string
	projects           []*project
	issues             map[int64]*issue
	keys               map[string]*issue // current and former keys, upper case
	order              []*issue          // every issue ever created, ascending id
	members            map[string]bool
	attachments        map[int64]*attachment
	nextIssueID        int64
	nextCommentID      int64
	nextHistoryID      int64
	nextAttachmentID   int64
}

type project struct {
	id      int64
	key     string
	name    string
	site    *site
	nextNum int
	denied  map[string]bool
}

type issue struct {
	id          int64
	key         string
	project     *project
	issueType   string
	status      string
	priority    string
	summary     string
	description map[string]any // ADF doc; nil for none
	labels      []string
	assignee    string
	reporter    string
	creator     string
	created     time.Time
	updated     time.Time
	storyPoints float64
	dueDate     *time.Time
	comments    []*comment
	histories   []*history
	attachments []*attachment
	deleted     bool

	// The search index view: cur is what search sees once the consistency delay has passed since changedAt,
	// prev what it sees before. nil means "not in the index" (deleted, or not yet created).
	cur, prev *jql.Issue
	changedAt time.Time
}

type comment struct {
	id           int64
	author       string
	updateAuthor string
	body         map[string]any
	created      time.Time
	updated      time.Time
	visibility   map[string]any
}

type history struct {
	id      int64
	author  string
	created time.Time
	items   []changeItem
}

type changeItem struct {
	Field, FieldType, FieldID, From, FromString, To, ToString string
	hasFrom, hasTo                                            bool
}

type attachment struct {
	id       int64
	uuid     string
	issue    *issue
	filename string
	mimeType string
	size     int64
	author   string
	created  time.Time
	seed     uint64
}

var (
	issueTypes = []string{"Bug", "Task", "Story", "Epic"}
	statuses   = []string{"To Do", "In Progress", "In Review", "Done"}
	priorities = []string{"Highest", "High", "Medium", "Low", "Lowest"}
	labelPool  = []string{"backend", "frontend", "customer", "security", "tech-debt", "urgent", "docs"}
	projKeys   = []string{"ENG", "OPS", "SUP", "MKT", "FIN", "SEC", "DATA", "WEB"}
	timeZones  = []string{"Australia/Sydney", "America/New_York", "Europe/Berlin", "UTC", "Asia/Kolkata", "America/Sao_Paulo"}
	firstNames = []string{"Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Alan", "Radia"}
	lastNames  = []string{"Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen", "Turing", "Perlman"}
	words      = strings.Fields("export pipeline token refresh cursor page quota index field status release deploy " +
		"customer report latency timeout attachment comment widget billing migration schema backup alert login")
)

type fileKind struct{ ext, mime string }

var fileKinds = []fileKind{
	{"txt", "text/plain"}, {"png", "image/png"}, {"pdf", "application/pdf"},
	{"zip", "application/zip"}, {"json", "application/json"}, {"csv", "text/csv"}, {"jpg", "image/jpeg"},
}

func newUUID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func hex24(r *rand.Rand) string {
	const digits = "0123456789abcdef"
	var b [24]byte
	for i := range b {
		b[i] = digits[r.UintN(16)]
	}
	return string(b[:])
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func randTime(r *rand.Rand, from, to time.Time) time.Time {
	if !to.After(from) {
		return from
	}
	d := to.Sub(from)
	return from.Add(time.Duration(r.Int64N(int64(d)))).Truncate(time.Millisecond)
}

// generate builds the whole seeded dataset. Everything derives from cfg.Seed, so two servers with the same
// Config (and clock) hold identical data.
func generate(cfg Config, now time.Time) *dataset {
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed_a71a_551a))
	now = now.Truncate(time.Millisecond)
	d := &dataset{userByID: map[string]*User{}, siteByID: map[string]*site{}, attByUUID: map[string]*attachment{}}

	for i := 0; i < cfg.Sites; i++ {
		st := &site{
			cloudID: newUUID(r), name: fmt.Sprintf("sim-site-%d", i+1),
			issues: map[int64]*issue{}, keys: map[string]*issue{}, members: map[string]bool{},
			attachments: map[int64]*attachment{},
			nextIssueID: 10000, nextCommentID: 10000, nextHistoryID: 10000, nextAttachmentID: 10000,
		}
		st.url = "https://" + st.name + ".atlassian.net"
		d.sites = append(d.sites, st)
		d.siteByID[st.cloudID] = st
	}

	// People. Both account id formats occur in real sites: "557058:<uuid>" for older accounts and 24 hex digits.
	for i := 0; i < cfg.Users; i++ {
		u := &User{AccountType: "atlassian", Active: true, CanConsent: true, Locale: "en_US"}
		if i%2 == 0 {
			u.AccountID = "557058:" + newUUID(r)
		} else {
			u.AccountID = hex24(r)
		}
		fn, ln := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames)+i)%len(lastNames)]
		u.DisplayName = fn + " " + ln
		if i%3 != 2 { // every third user hides their email
			u.Email = strings.ToLower(fn+"."+ln) + fmt.Sprintf("%d@example.com", i)
		}
		if i%4 != 3 {
			u.TimeZone = timeZones[i%len(timeZones)]
		}
		if i == cfg.Users-1 && cfg.Users > 2 {
			u.Active = false // a deactivated colleague still appears on old issues
			u.CanConsent = false
		}
		// The first user belongs to every site, so one grant covers several sites; others to one or two.
		for j, st := range d.sites {
			if i == 0 || j == i%len(d.sites) || (i%3 == 1 && j == (i+1)%len(d.sites)) {
				u.Sites = append(u.Sites, st.cloudID)
				st.members[u.AccountID] = true
			}
		}
		d.users = append(d.users, u)
	}
	app := &User{AccountID: hex24(r), AccountType: "app", DisplayName: "Automation for Jira", Active: true, Locale: "en_US"}
	unknown := &User{AccountID: "unknown", AccountType: "unknown", DisplayName: "Former user", Locale: "en_US"}
	for _, st := range d.sites {
		app.Sites = append(app.Sites, st.cloudID)
		unknown.Sites = append(unknown.Sites, st.cloudID)
		st.members[app.AccountID] = true
		st.members[unknown.AccountID] = true
	}
	d.users = append(d.users, app, unknown)
	for _, u := range d.users {
		d.userByID[u.AccountID] = u
	}

	start := now.Add(-400 * 24 * time.Hour)
	for si, st := range d.sites {
		var people []string
		for _, u := range d.users {
			if st.members[u.AccountID] && u.AccountType == "atlassian" {
				people = append(people, u.AccountID)
			}
		}
		type pending struct {
			p       *project
			created time.Time
		}
		var all []pending
		for pi := 0; pi < cfg.ProjectsPerSite; pi++ {
			key := projKeys[pi%len(projKeys)]
			if pi >= len(projKeys) {
				key += fmt.Sprintf("%d", pi/len(projKeys))
			}
			p := &project{id: int64(10000 + pi), key: key, name: strings.ToUpper(key[:1]) + strings.ToLower(key[1:]) + " project",
				site: st, denied: map[string]bool{}}
			st.projects = append(st.projects, p)
			for k := 0; k < cfg.IssuesPerProject; k++ {
				all = append(all, pending{p, randTime(r, start, now.Add(-24*time.Hour))})
			}
		}
		// Issue ids grow with creation time across projects, as in Jira.
		sort.SliceStable(all, func(a, b int) bool { return all[a].created.Before(all[b].created) })
		for n, pd := range all {
			is := genIssue(r, cfg, d, st, pd.p, pd.created, now, people, app.AccountID, n)
			st.addIssue(is)
		}
		if si == 0 && cfg.LargeAttachmentSize > 0 && len(st.order) > 0 {
			is := st.order[0]
			a := st.newAttachment(r, is, "large-export.bin", "application/octet-stream", cfg.LargeAttachmentSize, people[0], is.created)
			is.attachments = append(is.attachments, a)
			d.attByUUID[a.uuid] = a
		}
		for _, is := range st.order {
			for _, a := range is.attachments {
				d.attByUUID[a.uuid] = a
			}
			is.cur = is.index(d)
			is.changedAt = now
		}
	}
	d.uuidRand = r
	return d
}

func (st *site) addIssue(is *issue) {
	st.issues[is.id] = is
	st.keys[is.key] = is
	st.order = append(st.order, is)
}

func (st *site) newAttachment(r *rand.Rand, is *issue, name, mime string, size int64, author string, created time.Time) *attachment {
	a := &attachment{id: st.nextAttachmentID, uuid: newUUID(r), issue: is, filename: name, mimeType: mime, size: size,
		author: author, created: created, seed: r.Uint64()}
	st.nextAttachmentID++
	st.attachments[a.id] = a
	return a
}

func genIssue(r *rand.Rand, cfg Config, d *dataset, st *site, p *project, created, now time.Time, people []string, appUser string, n int) *issue {
	p.nextNum++
	is := &issue{
		id: st.nextIssueID, key: fmt.Sprintf("%s-%d", p.key, p.nextNum), project: p,
		issueType: pick(r, issueTypes), status: pick(r, statuses), priority: pick(r, priorities),
		summary: sentence(r, 4+r.IntN(6)), reporter: pick(r, people), created: created,
		storyPoints: float64(r.IntN(13)),
	}
	st.nextIssueID++
	is.creator = is.reporter
	if r.IntN(4) != 0 {
		is.assignee = pick(r, people)
	}
	if r.IntN(3) == 0 {
		dd := created.Add(time.Duration(r.IntN(60)) * 24 * time.Hour).Truncate(24 * time.Hour)
		is.dueDate = &dd
	}
	for _, l := range labelPool {
		if r.IntN(5) == 0 {
			is.labels = append(is.labels, l)
		}
	}
	if n%9 != 4 { // some issues have no description at all
		is.description = genDoc(r, d, people, n%3 == 0)
	}
	is.updated = randTime(r, created, now.Add(-time.Hour))

	nComments := r.IntN(min(6, cfg.MaxComments+1))
	if n%7 == 0 {
		nComments = cfg.MaxComments
	}
	for c := 0; c < nComments; c++ {
		author := pick(r, people)
		switch {
		case c%11 == 5:
			author = "unknown"
		case c%13 == 7:
			author = appUser
		}
		cm := &comment{id: st.nextCommentID, author: author, updateAuthor: author, body: genDoc(r, d, people, c%4 == 0),
			created: randTime(r, created, is.updated)}
		cm.updated = cm.created
		if c%5 == 3 {
			cm.updated = randTime(r, cm.created, is.updated)
		}
		if c%10 == 9 {
			cm.visibility = map[string]any{"type": "role", "value": "Administrators", "identifier": "Administrators"}
		}
		st.nextCommentID++
		is.comments = append(is.comments, cm)
	}
	sort.SliceStable(is.comments, func(a, b int) bool { return is.comments[a].created.Before(is.comments[b].created) })

	nHist := r.IntN(min(7, cfg.MaxChangelog+1))
	if n%5 == 0 {
		nHist = cfg.MaxChangelog
	}
	var times []time.Time
	for h := 0; h < nHist; h++ {
		times = append(times, randTime(r, created, is.updated))
	}
	sort.Slice(times, func(a, b int) bool { return times[a].Before(times[b]) })
	status := statuses[0]
	for _, t := range times {
		h := &history{id: st.nextHistoryID, author: pick(r, people), created: t}
		st.nextHistoryID++
		switch r.IntN(4) {
		case 0:
			next := pick(r, statuses)
			h.items = append(h.items, changeItem{Field: "status", FieldType: "jira", FieldID: "status",
				From: statusID(status), FromString: status, To: statusID(next), ToString: next, hasFrom: true, hasTo: true})
			status = next
		case 1:
			to := pick(r, people)
			h.items = append(h.items, changeItem{Field: "assignee", FieldType: "jira", FieldID: "assignee",
				To: to, ToString: d.userByID[to].DisplayName, hasTo: true})
		case 2:
			h.items = append(h.items, changeItem{Field: "summary", FieldType: "jira", FieldID: "summary",
				FromString: sentence(r, 3), ToString: is.summary})
		default:
			h.items = append(h.items, changeItem{Field: "labels", FieldType: "jira", FieldID: "labels",
				FromString: "", ToString: strings.Join(is.labels, " ")},
				changeItem{Field: "Story Points", FieldType: "custom", FieldID: "customfield_10016",
					FromString: "1", ToString: fmt.Sprint(is.storyPoints)})
		}
		is.histories = append(is.histories, h)
	}

	nAtt := r.IntN(4)
	if n%6 == 1 {
		nAtt = 0
	}
	for a := 0; a < nAtt; a++ {
		k := fileKinds[(n+a)%len(fileKinds)]
		size := r.Int64N(cfg.MaxAttachmentSize + 1)
		if n%17 == 3 && a == 0 {
			size = 0 // an empty file is a legal attachment
		}
		name := fmt.Sprintf("%s-%d.%s", pick(r, words), a+1, k.ext)
		if n%10 == 2 && a == 0 {
			name = "Résumé (final) v2." + k.ext // non-ASCII and spaces in file names
		}
		is.attachments = append(is.attachments, st.newAttachment(r, is, name, k.mime, size, pick(r, people), randTime(r, created, is.updated)))
	}
	return is
}

func statusID(name string) string {
	for i, s := range statuses {
		if s == name {
			return fmt.Sprint(10000 + i)
		}
	}
	return "10000"
}

func sentence(r *rand.Rand, n int) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = pick(r, words)
	}
	s := strings.Join(ws, " ")
	return strings.ToUpper(s[:1]) + s[1:]
}

// genDoc builds an Atlassian Document Format body. rich adds the node kinds a converter most often gets wrong:
// tables, code blocks, lists and headings; every body gets text with marks, a link and (usually) a mention.
func genDoc(r *rand.Rand, d *dataset, people []string, rich bool) map[string]any {
	text := func(s string, marks ...map[string]any) map[string]any {
		n := map[string]any{"type": "text", "text": s}
		if len(marks) > 0 {
			ms := make([]any, len(marks))
			for i, m := range marks {
				ms[i] = m
			}
			n["marks"] = ms
		}
		return n
	}
	para := func(children ...any) map[string]any {
		return map[string]any{"type": "paragraph", "content": children}
	}
	who := d.userByID[pick(r, people)]
	content := []any{
		para(text(sentence(r, 5)+" "), text("important", map[string]any{"type": "strong"}), text(", see "),
			text("the runbook", map[string]any{"type": "link", "attrs": map[string]any{"href": "https://example.com/runbook/" + pick(r, words)}}),
			text(" and ask "),
			map[string]any{"type": "mention", "attrs": map[string]any{"id": who.AccountID, "text": "@" + who.DisplayName, "accessLevel": ""}},
			text(".")),
	}
	if rich {
		cell := func(kind, s string) map[string]any {
			return map[string]any{"type": kind, "attrs": map[string]any{}, "content": []any{para(text(s))}}
		}
		content = append(content,
			map[string]any{"type": "heading", "attrs": map[string]any{"level": 2}, "content": []any{text("Details")}},
			map[string]any{"type": "bulletList", "content": []any{
				map[string]any{"type": "listItem", "content": []any{para(text(sentence(r, 3)))}},
				map[string]any{"type": "listItem", "content": []any{para(text(sentence(r, 3), map[string]any{"type": "code"}))}},
			}},
			map[string]any{"type": "codeBlock", "attrs": map[string]any{"language": "go"},
				"content": []any{text("func main() {\n\tfmt.Println(\"" + pick(r, words) + "\")\n}")}},
			map[string]any{"type": "table", "attrs": map[string]any{"isNumberColumnEnabled": false, "layout": "default"},
				"content": []any{
					map[string]any{"type": "tableRow", "content": []any{cell("tableHeader", "Field"), cell("tableHeader", "Value")}},
					map[string]any{"type": "tableRow", "content": []any{cell("tableCell", pick(r, words)), cell("tableCell", fmt.Sprint(r.IntN(1000)))}},
				}},
			map[string]any{"type": "paragraph", "content": []any{
				map[string]any{"type": "inlineCard", "attrs": map[string]any{"url": "https://example.com/browse/" + pick(r, words)}},
				map[string]any{"type": "hardBreak"},
				map[string]any{"type": "emoji", "attrs": map[string]any{"shortName": ":thumbsup:", "id": "1f44d", "text": "👍"}},
			}},
		)
	}
	return map[string]any{"type": "doc", "version": 1, "content": content}
}

// adfText flattens an ADF document to the plain text that JQL text search matches.
func adfText(doc map[string]any) string {
	if doc == nil {
		return ""
	}
	var b strings.Builder
	var walk func(n any)
	walk = func(n any) {
		m, ok := n.(map[string]any)
		if !ok {
			return
		}
		switch m["type"] {
		case "text":
			s, _ := m["text"].(string)
			b.WriteString(s)
		case "mention":
			if a, ok := m["attrs"].(map[string]any); ok {
				s, _ := a["text"].(string)
				b.WriteString(s)
			}
		case "hardBreak":
			b.WriteString("\n")
		}
		if c, ok := m["content"].([]any); ok {
			for _, ch := range c {
				walk(ch)
			}
			if m["type"] == "paragraph" || m["type"] == "heading" || m["type"] == "codeBlock" {
				b.WriteString("\n")
			}
		}
	}
	walk(doc)
	return b.String()
}

// index builds the JQL view of the issue as it is now.
func (is *issue) index(d *dataset) *jql.Issue {
	var comments strings.Builder
	for _, c := range is.comments {
		comments.WriteString(adfText(c.body))
		comments.WriteString("\n")
	}
	return &jql.Issue{
		ID: is.id, Key: is.key,
		ProjectID: fmt.Sprint(is.project.id), ProjectKey: is.project.key, ProjectName: is.project.name,
		IssueType: is.issueType, Status: is.status, Labels: append([]string(nil), is.labels...),
		Assignee: is.assignee, Reporter: is.reporter, Created: is.created, Updated: is.updated,
		Summary: is.summary, Description: adfText(is.description), Comments: comments.String(),
	}
}

// canBrowse reports whether account may see issues of p: a member of the site who was not denied.
func (p *project) canBrowse(accountID string) bool {
	return p.site.members[accountID] && !p.denied[accountID]
}

func (d *dataset) userCopy(u *User) User {
	c := *u
	c.Sites = append([]string(nil), u.Sites...)
	return c
}

// Users returns the seeded users, including the app user and the `unknown` placeholder.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.data.users))
	for _, u := range s.data.users {
		out = append(out, s.data.userCopy(u))
	}
	return out
}

// ConsentingUsers returns the users who can log in and grant access, the first one being a member of every site.
func (s *Server) ConsentingUsers() []User {
	var out []User
	for _, u := range s.Users() {
		if u.CanConsent {
			out = append(out, u)
		}
	}
	return out
}

// Sites returns the seeded sites and their projects.
func (s *Server) Sites() []Site {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Site, 0, len(s.data.sites))
	for _, st := range s.data.sites {
		v := Site{CloudID: st.cloudID, Name: st.name, URL: st.url}
		for _, p := range st.projects {
			pi := ProjectInfo{ID: fmt.Sprint(p.id), Key: p.key, Name: p.name}
			for _, is := range st.order {
				if is.project == p && !is.deleted {
					pi.Issues++
				}
			}
			for a := range p.denied {
				pi.Denied = append(pi.Denied, a)
			}
			sort.Strings(pi.Denied)
			v.Projects = append(v.Projects, pi)
		}
		out = append(out, v)
	}
	return out
}
