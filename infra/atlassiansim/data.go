package atlassiansim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
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
	users    []*User
	userByID map[string]*User
	sites    []*site
	siteByID map[string]*site
}

// A site keeps a compact skeleton per issue (about 40 bytes) and generates everything else — description,
// comments, changelog, worklogs, attachments, custom fields — from the seed each time it is asked. Only issues
// that were mutated (or created) are held in full, in live. So a 100,000-issue site starts in well under a second
// and costs a few MB, and two servers with the same Config serve identical bytes.
type site struct {
	cloudID, name, url string
	seed               uint64
	cfg                *Config
	d                  *dataset
	projects           []*project
	people             []string // account ids of the site's regular members, the pool of generated people
	appUser            string
	members            map[string]bool
	epoch              time.Time // earliest generated timestamp; time-derived ids count from here
	skels              []skel    // every issue ever, by ordinal n; issue id = 10000 + n
	generated          int32     // issues 0..generated-1 come from the seed; later ones were created by mutations
	children           map[int32][]int32
	live               map[int32]*issue      // mutated or created issues, in full
	largeAttachment    int64                 // size of the extra large attachment on issue 0 (site 0 only), 0 = none
	lastMutID          int64                 // last id handed out to a comment, history or worklog made by a mutation
	pointsMaps         [14]map[int64]float64 // shared, read-only cf[10016] values of skeleton views, by points
	usedAttachment     map[int64]bool        // attachment ids added or removed by mutations
	recent             recentIssues          // generated issues served lately (see issue)
}

// recentIssues keeps the last generated issues: a page's issues are asked for again right after the search that
// listed them (their comments, changelogs, attachments), and generating one (its documents above all) was most
// of the simulator's CPU in the export benchmark. A generated issue is a pure function of the site's seed and
// its skeleton, which never change, so a kept one is the one that would be generated again.
type recentIssues struct {
	byN  map[int32]*issue
	ring [recentIssuesKept]int32
	next int
}

// recentIssuesKept covers a few search pages of 100 issues.
const recentIssuesKept = 512

func (r *recentIssues) get(n int32) *issue { return r.byN[n] }

func (r *recentIssues) put(n int32, is *issue) {
	if r.byN == nil {
		r.byN = make(map[int32]*issue, recentIssuesKept)
		for i := range r.ring {
			r.ring[i] = -1
		}
	}
	if old := r.ring[r.next]; old >= 0 {
		delete(r.byN, old)
	}
	r.ring[r.next] = n
	r.byN[n] = is
	r.next = (r.next + 1) % recentIssuesKept
}

// skel is what search needs without generating an issue: its identity, dates, the fields JQL matches on.
type skel struct {
	created, updated int64 // unix ms
	parent           int32 // ordinal of the parent (epic or, for sub-tasks, the parent issue); -1 none
	num              int32 // key number in its project
	proj             uint8
	typ              uint8
	status           uint8
	prio             uint8
	labels           uint8 // bit set over labelPool
	assignee         int16 // index into site.people; -1 unassigned
	reporter         int16
	flags            uint8
	points           uint8 // story point estimate; 0 = none
}

const (
	flagNoDescription uint8 = 1 << iota
	flagManyComments
	flagLongChangelog
	flagAttachments
	flagManyWorklogs
	flagRich
)

type project struct {
	id     int64
	idStr  string
	key    string
	name   string
	site   *site
	nums   []int32 // key number - 1 → issue ordinal (moves append; an old key keeps resolving)
	denied map[string]bool
}

type issue struct {
	n           int32
	id          int64
	key         string
	project     *project
	issueType   string
	status      string
	priority    string
	summary     string
	description map[string]any // ADF doc; nil for none
	environment map[string]any // ADF doc; nil for none
	labels      []string
	assignee    string
	reporter    string
	creator     string
	created     time.Time
	updated     time.Time
	dueDate     *time.Time
	parent      int32 // ordinal, -1 none
	custom      customValues
	components  []int
	fixVersions []int
	versions    []int
	votes       int
	watchers    int
	estimate    int64 // original estimate, seconds; 0 = none
	remaining   int64
	comments    []*comment
	histories   []*history
	worklogs    []*worklog
	attachments []*attachment
	deleted     bool
	mutated     bool

	// The search index view of a live issue: cur is what search sees once the consistency delay has passed since
	// changedAt, prev what it sees before. nil means "not in the index" (deleted, or not yet created).
	cur, prev *jql.Issue
	changedAt time.Time
}

// customValues are the custom fields of the common types, with ids as on a Jira Software site.
type customValues struct {
	storyPoints  *float64       // customfield_10016, number (jsw-story-points)
	sprints      []int          // customfield_10020, sprint ids
	severity     int            // customfield_10030, single select option index; -1 none
	platforms    []int          // customfield_10031, multi select option indexes
	reviewer     string         // customfield_10032, user picker
	stakeholders []string       // customfield_10033, multi-user picker
	acceptance   map[string]any // customfield_10034, rich text (ADF)
	targetStart  *time.Time     // customfield_10035, date
	cost         *float64       // customfield_10036, number (float)
	customerTags []string       // customfield_10037, labels
	designURL    string         // customfield_10038, URL
	incidentAt   *time.Time     // customfield_10039, date-time
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

// changeItem is one ChangeDetails. Empty strings with has* false are written as null, as Jira does.
type changeItem struct {
	Field, FieldType, FieldID, From, FromString, To, ToString string
	hasFrom, hasTo, hasFromString, hasToString, user          bool
}

type worklog struct {
	id      int64
	author  string
	comment map[string]any // ADF or nil
	started time.Time
	created time.Time
	updated time.Time
	seconds int64
}

type attachment struct {
	id       int64
	issue    *issue
	filename string
	mimeType string
	size     int64
	author   string
	created  time.Time
	seed     uint64
}

var (
	issueTypes = []string{"Bug", "Task", "Story", "Epic", "Subtask"}
	statuses   = []string{"To Do", "In Progress", "In Review", "Done"}
	priorities = []string{"Highest", "High", "Medium", "Low", "Lowest"}
	labelPool  = []string{"backend", "frontend", "customer", "security", "tech-debt", "urgent", "docs"}
	projKeys   = []string{"ENG", "OPS", "SUP", "MKT", "FIN", "SEC", "DATA", "WEB"}
	timeZones  = []string{"Australia/Sydney", "America/New_York", "Europe/Berlin", "UTC", "Asia/Kolkata", "America/Sao_Paulo"}
	firstNames = []string{"Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Alan", "Radia"}
	lastNames  = []string{"Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen", "Turing", "Perlman"}
	words      = strings.Fields("export pipeline token refresh cursor page quota index field status release deploy " +
		"customer report latency timeout attachment comment widget billing migration schema backup alert login")
	componentNames = []string{"API", "Backend", "Frontend", "Infrastructure", "Mobile"}
	versionNames   = []string{"1.0", "1.1", "2.0", "2.1", "3.0"}
	severityOpts   = []string{"Critical", "Major", "Minor", "Trivial"}
	platformOpts   = []string{"Web", "iOS", "Android", "Desktop"}
	linkTypes      = []struct{ id, name, inward, outward string }{
		{"10000", "Blocks", "is blocked by", "blocks"}, {"10001", "Cloners", "is cloned by", "clones"},
		{"10002", "Duplicate", "is duplicated by", "duplicates"}, {"10003", "Relates", "relates to", "relates to"},
	}
)

const (
	typeBug, typeTask, typeStory, typeEpic, typeSubtask = 0, 1, 2, 3, 4
	statusDone                                          = 3
	maxAttachmentsPerIssue                              = 8 // attachment id = 10000 + n*8 + index
	largeAttachmentIndex                                = 7
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
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
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

// unit is a deterministic number in [0,1) for (seed, n, salt): it decides per issue, independently of every other
// issue, whether the issue is in one of the configured shares.
func unit(seed uint64, n int32, salt uint64) float64 {
	return float64(splitmix(seed^uint64(n)*0x9e3779b97f4a7c15^salt*0xd1b54a32d192ed03)>>11) / (1 << 53)
}

// issueRand is the random stream of one issue's body.
func (st *site) issueRand(n int32, salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(st.seed^uint64(n)*0x9e3779b97f4a7c15, salt))
}

// generate builds users, sites, projects and issue skeletons. Everything derives from cfg.Seed, so two servers
// with the same Config (and clock) hold identical data.
func generate(cfg *Config, now time.Time) *dataset {
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed_a71a_551a))
	now = now.Truncate(time.Millisecond)
	d := &dataset{userByID: map[string]*User{}, siteByID: map[string]*site{}}

	for i := 0; i < cfg.Sites; i++ {
		st := &site{cloudID: newUUID(r), name: fmt.Sprintf("sim-site-%d", i+1), members: map[string]bool{},
			live: map[int32]*issue{}, children: map[int32][]int32{}, usedAttachment: map[int64]bool{}, cfg: cfg, d: d}
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
		st.appUser = app.AccountID
	}
	d.users = append(d.users, app, unknown)
	for _, u := range d.users {
		d.userByID[u.AccountID] = u
	}

	start := now.Add(-400 * 24 * time.Hour)
	for si, st := range d.sites {
		st.seed = r.Uint64()
		st.epoch = start
		for _, u := range d.users {
			if st.members[u.AccountID] && u.AccountType == "atlassian" {
				st.people = append(st.people, u.AccountID)
			}
		}
		for pi := 0; pi < cfg.ProjectsPerSite; pi++ {
			key := projKeys[pi%len(projKeys)]
			if pi >= len(projKeys) {
				key += strconv.Itoa(pi / len(projKeys))
			}
			st.projects = append(st.projects, &project{id: int64(10000 + pi), idStr: strconv.Itoa(10000 + pi), key: key,
				name: strings.ToUpper(key[:1]) + strings.ToLower(key[1:]) + " project", site: st, denied: map[string]bool{}})
		}
		st.skeletons(now)
		for p := range st.pointsMaps {
			st.pointsMaps[p] = map[int64]float64{10016: float64(p)}
		}
		if si == 0 && cfg.LargeAttachmentSize > 0 && len(st.skels) > 0 {
			st.largeAttachment = cfg.LargeAttachmentSize
		}
	}
	return d
}

// skeletons lays out the site's issues: ids (and so ordinals) grow with creation time across projects, as in
// Jira; epics, stories under epics and sub-tasks under their parents in the same project.
func (st *site) skeletons(now time.Time) {
	cfg := st.cfg
	total := cfg.ProjectsPerSite * cfg.IssuesPerProject
	st.skels = make([]skel, 0, total)
	from, to := st.epoch.UnixMilli(), now.Add(-24*time.Hour).UnixMilli()
	slot := max(int64(1), (to-from)/int64(max(1, total)))
	rs := rand.New(rand.NewPCG(st.seed, 0x51e1))
	counts := make([]int, cfg.ProjectsPerSite)
	lastEpic := make([]int32, cfg.ProjectsPerSite)
	lastStd := make([]int32, cfg.ProjectsPerSite)
	for i := range lastEpic {
		lastEpic[i], lastStd[i] = -1, -1
	}
	for n := int32(0); int(n) < total; n++ {
		// Every project gets exactly IssuesPerProject issues, interleaved in time.
		pi := rs.IntN(cfg.ProjectsPerSite)
		for counts[pi] >= cfg.IssuesPerProject {
			pi = (pi + 1) % cfg.ProjectsPerSite
		}
		counts[pi]++
		p := st.projects[pi]
		sk := skel{proj: uint8(pi), parent: -1, assignee: -1}
		sk.created = from + int64(n)*slot + rs.Int64N(slot)
		upTo := now.Add(-time.Hour).UnixMilli()
		sk.updated = sk.created + rs.Int64N(max(1, upTo-sk.created))
		switch x := rs.IntN(100); {
		case x < 5:
			sk.typ = typeEpic
		case x < 20 && lastStd[pi] >= 0:
			sk.typ = typeSubtask
			sk.parent = lastStd[pi]
		case x < 45:
			sk.typ = typeStory
		case x < 70:
			sk.typ = typeTask
		default:
			sk.typ = typeBug
		}
		if sk.typ != typeEpic && sk.typ != typeSubtask && lastEpic[pi] >= 0 && rs.IntN(2) == 0 {
			sk.parent = lastEpic[pi]
		}
		switch sk.typ {
		case typeEpic:
			lastEpic[pi] = n
		case typeSubtask:
			st.children[sk.parent] = append(st.children[sk.parent], n)
		default:
			lastStd[pi] = n
		}
		sk.status = uint8(rs.IntN(len(statuses)))
		sk.prio = uint8(rs.IntN(len(priorities)))
		for b := range labelPool {
			if rs.IntN(5) == 0 {
				sk.labels |= 1 << b
			}
		}
		sk.reporter = int16(rs.IntN(len(st.people)))
		if rs.IntN(4) != 0 {
			sk.assignee = int16(rs.IntN(len(st.people)))
		}
		if n%9 == 4 { // some issues have no description at all
			sk.flags |= flagNoDescription
		}
		if n%3 == 0 {
			sk.flags |= flagRich
		}
		if unit(st.seed, n, 1) < cfg.ManyCommentsShare {
			sk.flags |= flagManyComments
		}
		if unit(st.seed, n, 2) < cfg.LongChangelogShare {
			sk.flags |= flagLongChangelog
		}
		if unit(st.seed, n, 3) < cfg.AttachmentShare {
			sk.flags |= flagAttachments
		}
		if sk.typ != typeEpic && rs.IntN(3) != 0 {
			sk.points = uint8(1 + rs.IntN(13))
		}
		if unit(st.seed, n, 4) < cfg.ManyWorklogsShare {
			sk.flags |= flagManyWorklogs
		}
		p.nums = append(p.nums, n)
		sk.num = int32(len(p.nums))
		st.skels = append(st.skels, sk)
	}
	st.generated = int32(len(st.skels))
}

func (st *site) person(i int16) string {
	if i < 0 {
		return ""
	}
	return st.people[i]
}

func (sk *skel) labelList() []string {
	var out []string
	for b, l := range labelPool {
		if sk.labels&(1<<b) != 0 {
			out = append(out, l)
		}
	}
	return out
}

// summaryOf is the generated summary of issue n (its own stream, so search need not generate the body).
func (st *site) summaryOf(n int32) string {
	r := st.issueRand(n, 0x5a)
	return sentence(r, 4+r.IntN(6))
}

// issue returns issue n in full: the live copy if it was mutated, otherwise freshly generated. Callers must not
// modify a generated issue; mutations go through materialize.
func (st *site) issue(n int32) *issue {
	if n < 0 || int(n) >= len(st.skels) {
		return nil
	}
	if is := st.live[n]; is != nil {
		return is
	}
	if is := st.recent.get(n); is != nil {
		return is
	}
	is := st.build(n)
	st.recent.put(n, is)
	return is
}

// refIssue is issue n with only what a reference to it shows (key, summary, status, priority, type), without
// generating its body: parents, sub-tasks and links are rendered for many issues per page.
func (st *site) refIssue(n int32) *issue {
	if n < 0 || int(n) >= len(st.skels) {
		return nil
	}
	if is := st.live[n]; is != nil {
		return is
	}
	sk := &st.skels[n]
	p := st.projects[sk.proj]
	return &issue{n: n, id: 10000 + int64(n), key: p.key + "-" + strconv.Itoa(int(sk.num)), project: p,
		issueType: issueTypes[sk.typ], status: statuses[sk.status], priority: priorities[sk.prio], summary: st.summaryOf(n)}
}

// materialize makes issue n live, so that a mutation sticks.
func (st *site) materialize(n int32) *issue {
	if is := st.live[n]; is != nil {
		return is
	}
	is := st.build(n)
	is.mutated = true
	is.cur = st.view(n)
	st.live[n] = is
	return is
}

// idFor derives a comment, changelog or worklog id from its creation time, so ids rise with creation time across
// the whole site, as Jira's sequences do. The low bits keep two issues' items at the same millisecond apart.
func (st *site) idFor(t time.Time, n int32) int64 {
	return 10000 + (t.UnixMilli()-st.epoch.UnixMilli())*64 + int64(n%64)
}

// nextMutID is idFor for items made by a mutation: strictly above everything handed out so far.
func (st *site) nextMutID(now time.Time, n int32) int64 {
	id := max(st.idFor(now, n), st.lastMutID+1)
	st.lastMutID = id
	return id
}

func attachmentID(n int32, i int) int64 { return 10000 + int64(n)*maxAttachmentsPerIssue + int64(i) }

// build generates issue n from its skeleton and its own random streams.
func (st *site) build(n int32) *issue {
	cfg := st.cfg
	sk := &st.skels[n]
	p := st.projects[sk.proj]
	r := st.issueRand(n, 0xb0d)
	is := &issue{n: n, id: 10000 + int64(n), key: p.key + "-" + strconv.Itoa(int(sk.num)), project: p,
		issueType: issueTypes[sk.typ], status: statuses[sk.status], priority: priorities[sk.prio],
		summary: st.summaryOf(n), labels: sk.labelList(), assignee: st.person(sk.assignee), reporter: st.person(sk.reporter),
		created: time.UnixMilli(sk.created).UTC(), updated: time.UnixMilli(sk.updated).UTC(), parent: sk.parent}
	is.creator = is.reporter
	people := st.people
	if r.IntN(3) == 0 {
		dd := is.created.Add(time.Duration(r.IntN(60)) * 24 * time.Hour).Truncate(24 * time.Hour)
		is.dueDate = &dd
	}
	rich := sk.flags&flagRich != 0
	if sk.flags&flagNoDescription == 0 {
		is.description = st.genDoc(r, n, rich, true)
	}
	if n%4 == 1 {
		is.environment = st.genDoc(r, n, false, false)
	}

	// Custom fields: each present on a share of issues, as on a real site where most fields are empty most of the time.
	c := &is.custom
	c.severity = -1
	if sk.points > 0 {
		v := float64(sk.points)
		c.storyPoints = &v
	}
	if sk.typ != typeEpic && r.IntN(2) == 0 {
		first := 1 + int((sk.created-st.epoch.UnixMilli())/(14*24*3600*1000))
		c.sprints = []int{first}
		if r.IntN(3) == 0 {
			c.sprints = append(c.sprints, first+1) // carried over into the next sprint
		}
	}
	if sk.typ == typeBug || r.IntN(4) == 0 {
		c.severity = r.IntN(len(severityOpts))
	}
	for i := range platformOpts {
		if r.IntN(3) == 0 {
			c.platforms = append(c.platforms, i)
		}
	}
	if r.IntN(2) == 0 {
		c.reviewer = pick(r, people)
	}
	for range r.IntN(3) {
		if u := pick(r, people); !contains(c.stakeholders, u) {
			c.stakeholders = append(c.stakeholders, u)
		}
	}
	if r.IntN(3) == 0 {
		c.acceptance = st.genDoc(r, n, rich, false)
	}
	if r.IntN(3) == 0 {
		t := is.created.Add(time.Duration(r.IntN(30)) * 24 * time.Hour).Truncate(24 * time.Hour)
		c.targetStart = &t
	}
	if r.IntN(3) == 0 {
		v := float64(r.IntN(100000)) / 100
		c.cost = &v
	}
	for _, w := range []string{"acme", "globex", "initech", "umbrella"} {
		if r.IntN(5) == 0 {
			c.customerTags = append(c.customerTags, w)
		}
	}
	if r.IntN(3) == 0 {
		c.designURL = "https://docs.example.com/design/" + pick(r, words) + "-" + strconv.Itoa(int(n))
	}
	if sk.typ == typeBug && r.IntN(2) == 0 {
		t := randTime(r, is.created, is.updated)
		c.incidentAt = &t
	}
	for i := range componentNames {
		if r.IntN(4) == 0 {
			is.components = append(is.components, i)
		}
	}
	if r.IntN(2) == 0 {
		is.fixVersions = []int{r.IntN(len(versionNames))}
	}
	if sk.typ == typeBug && r.IntN(2) == 0 {
		is.versions = []int{r.IntN(len(versionNames))}
	}
	is.votes = r.IntN(4)
	is.watchers = 1 + r.IntN(4)
	if r.IntN(2) == 0 {
		is.estimate = int64(1+r.IntN(16)) * 3600
	}

	// Comments: ids from creation times, oldest first.
	nComments := r.IntN(min(6, cfg.MaxComments+1))
	if sk.flags&flagManyComments != 0 {
		nComments = cfg.MaxComments
	}
	times := sortedTimes(r, nComments, is.created, is.updated)
	for ci, t := range times {
		author := pick(r, people)
		switch {
		case ci%11 == 5:
			author = "unknown"
		case ci%13 == 7:
			author = st.appUser
		}
		cm := &comment{id: st.idFor(t, n), author: author, updateAuthor: author, body: st.genDoc(r, n, ci%4 == 0, true), created: t, updated: t}
		if ci%5 == 3 {
			cm.updated = randTime(r, t, is.updated)
		}
		if ci%10 == 9 {
			cm.visibility = map[string]any{"type": "role", "value": "Administrators", "identifier": "Administrators"}
		}
		is.comments = append(is.comments, cm)
	}

	// Worklogs.
	nWork := 0
	if r.IntN(4) == 0 {
		nWork = 1 + r.IntN(3)
	}
	if sk.flags&flagManyWorklogs != 0 {
		nWork = cfg.MaxWorklogs
	}
	var spent int64
	for _, t := range sortedTimes(r, nWork, is.created, is.updated) {
		w := &worklog{id: st.idFor(t, n), author: pick(r, people), started: t.Add(-time.Duration(r.IntN(8)) * time.Hour),
			created: t, updated: t, seconds: int64(1+r.IntN(16)) * 900}
		if r.IntN(2) == 0 {
			w.comment = st.genDoc(r, n, false, false)
		}
		spent += w.seconds
		is.worklogs = append(is.worklogs, w)
	}
	if is.estimate > 0 {
		is.remaining = max(0, is.estimate-spent)
	}

	// Attachments.
	if sk.flags&flagAttachments != 0 {
		nAtt := 1 + r.IntN(3)
		for a := 0; a < nAtt; a++ {
			k := fileKinds[(int(n)+a)%len(fileKinds)]
			size := r.Int64N(cfg.MaxAttachmentSize + 1)
			if n%17 == 3 && a == 0 {
				size = 0 // an empty file is a legal attachment
			}
			name := fmt.Sprintf("%s-%d.%s", pick(r, words), a+1, k.ext)
			if n%10 == 2 && a == 0 {
				name = "Résumé (final) v2." + k.ext // non-ASCII and spaces in file names
			}
			is.attachments = append(is.attachments, &attachment{id: attachmentID(n, a), issue: is, filename: name,
				mimeType: k.mime, size: size, author: pick(r, people), created: randTime(r, is.created, is.updated), seed: r.Uint64()})
		}
	}
	if n == 0 && st.largeAttachment > 0 {
		is.attachments = append(is.attachments, &attachment{id: attachmentID(n, largeAttachmentIndex), issue: is,
			filename: "large-export.bin", mimeType: "application/octet-stream", size: st.largeAttachment,
			author: people[0], created: is.created, seed: st.seed ^ 0x1a96e})
	}

	is.histories = st.genHistory(r, is, sk)
	return is
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// sortedTimes draws n ascending, distinct millisecond instants in [from, to].
func sortedTimes(r *rand.Rand, n int, from, to time.Time) []time.Time {
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = randTime(r, from, to)
	}
	sort.Slice(ts, func(a, b int) bool { return ts[a].Before(ts[b]) })
	for i := 1; i < len(ts); i++ {
		if !ts[i].After(ts[i-1]) {
			ts[i] = ts[i-1].Add(time.Millisecond)
		}
	}
	return ts
}

// genHistory writes the issue's changelog the way Jira does: ids for from/to where the field has ids (status,
// priority, resolution, users, sprints, versions), null otherwise; user fields also carry tmpFromAccountId and
// tmpToAccountId. The walk ends at the issue's current status, assignee and story points.
func (st *site) genHistory(r *rand.Rand, is *issue, sk *skel) []*history {
	nHist := r.IntN(min(7, st.cfg.MaxChangelog+1))
	if sk.flags&flagLongChangelog != 0 {
		nHist = st.cfg.MaxChangelog
	}
	times := sortedTimes(r, nHist, is.created, is.updated)
	status := statuses[0]
	assignee := ""
	points := ""
	var out []*history
	for i, t := range times {
		last := i == len(times)-1
		h := &history{id: st.idFor(t, is.n), author: pick(r, st.people), created: t}
		k := r.IntN(8)
		if last {
			k = 0 // the walk ends on the current status (or, if already there, the current assignee)
			if status == is.status {
				k = 9
			}
		}
		switch {
		case k == 9:
			if assignee != is.assignee {
				h.items = append(h.items, st.userItem("assignee", "assignee", assignee, is.assignee))
				assignee = is.assignee
			} else {
				h.items = append(h.items, changeItem{Field: "summary", FieldType: "jira", FieldID: "summary",
					FromString: sentence(r, 3), ToString: is.summary, hasFromString: true, hasToString: true})
			}
		case k <= 1:
			next := statuses[(indexOf(statuses, status)+1+r.IntN(len(statuses)-1))%len(statuses)] // never to itself
			if last {
				next = is.status
			}
			h.items = append(h.items, statusItem(status, next))
			if next == "Done" && status != "Done" {
				h.items = append(h.items, changeItem{Field: "resolution", FieldType: "jira", FieldID: "resolution",
					To: "10000", ToString: "Done", hasTo: true, hasToString: true})
			}
			status = next
			if last && assignee != is.assignee {
				h.items = append(h.items, st.userItem("assignee", "assignee", assignee, is.assignee))
				assignee = is.assignee
			}
		case k == 2:
			to := pick(r, st.people)
			h.items = append(h.items, st.userItem("assignee", "assignee", assignee, to))
			assignee = to
		case k == 3:
			h.items = append(h.items, changeItem{Field: "summary", FieldType: "jira", FieldID: "summary",
				FromString: sentence(r, 3), ToString: is.summary, hasFromString: true, hasToString: true})
		case k == 4:
			h.items = append(h.items, changeItem{Field: "labels", FieldType: "jira", FieldID: "labels",
				FromString: "", ToString: strings.Join(is.labels, " "), hasFromString: true, hasToString: true})
		case k == 5:
			to := fmt.Sprint(1 + r.IntN(13))
			if is.custom.storyPoints != nil {
				to = strconv.FormatFloat(*is.custom.storyPoints, 'f', -1, 64)
			}
			it := changeItem{Field: "Story point estimate", FieldType: "custom", FieldID: "customfield_10016", ToString: to, hasToString: true}
			if points != "" {
				it.FromString, it.hasFromString = points, true
			}
			points = to
			h.items = append(h.items, it)
		case k == 6:
			from, to := r.IntN(len(priorities)), r.IntN(len(priorities))
			h.items = append(h.items, changeItem{Field: "priority", FieldType: "jira", FieldID: "priority",
				From: strconv.Itoa(from + 1), FromString: priorities[from], To: strconv.Itoa(to + 1), ToString: priorities[to],
				hasFrom: true, hasTo: true, hasFromString: true, hasToString: true})
		default:
			sprint := 1 + int((t.UnixMilli()-st.epoch.UnixMilli())/(14*24*3600*1000))
			h.items = append(h.items, changeItem{Field: "Sprint", FieldType: "custom", FieldID: "customfield_10020",
				From: "", FromString: "", To: strconv.Itoa(sprint), ToString: sprintName(is.project.key, sprint),
				hasFrom: true, hasFromString: true, hasTo: true, hasToString: true})
		}
		out = append(out, h)
	}
	return out
}

func statusItem(from, to string) changeItem {
	return changeItem{Field: "status", FieldType: "jira", FieldID: "status", From: statusID(from), FromString: from,
		To: statusID(to), ToString: to, hasFrom: true, hasTo: true, hasFromString: true, hasToString: true}
}

// userItem is a change of a user field: account ids in from/to and tmpFromAccountId/tmpToAccountId, display names
// in fromString/toString, null on an empty side.
func (st *site) userItem(field, fieldID, from, to string) changeItem {
	it := changeItem{Field: field, FieldType: "jira", FieldID: fieldID, user: true}
	if from != "" {
		it.From, it.FromString, it.hasFrom, it.hasFromString = from, st.d.userByID[from].DisplayName, true, true
	}
	if to != "" {
		it.To, it.ToString, it.hasTo, it.hasToString = to, st.d.userByID[to].DisplayName, true, true
	}
	return it
}

func sprintName(projectKey string, id int) string { return fmt.Sprintf("%s Sprint %d", projectKey, id) }

func statusID(name string) string {
	for i, s := range statuses {
		if s == name {
			return strconv.Itoa(10000 + i)
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

// lookup resolves an issue id or a current or former key to an ordinal; deleted and invisible issues included.
func (st *site) lookup(idOrKey string) (int32, bool) {
	if id, err := strconv.ParseInt(idOrKey, 10, 64); err == nil {
		n := id - 10000
		if n < 0 || n >= int64(len(st.skels)) {
			return 0, false
		}
		return int32(n), true
	}
	i := strings.LastIndexByte(idOrKey, '-')
	if i <= 0 {
		return 0, false
	}
	num, err := strconv.Atoi(idOrKey[i+1:])
	if err != nil || num < 1 {
		return 0, false
	}
	for _, p := range st.projects {
		if strings.EqualFold(p.key, idOrKey[:i]) && num <= len(p.nums) {
			return p.nums[num-1], true
		}
	}
	return 0, false
}

// view is the JQL index view of issue n as it is now, built from the skeleton for issues that were never
// changed. Text (summary, description, comments) is generated only if a query asks for it.
func (st *site) view(n int32) *jql.Issue {
	if is := st.live[n]; is != nil {
		return is.index()
	}
	v := &jql.Issue{}
	st.fillView(v, n, nil)
	return v
}

// fillView writes the skeleton view of issue n into v, reusing labels' backing array when given one: search
// evaluates every issue of a site per page and copies only the matches.
func (st *site) fillView(v *jql.Issue, n int32, labels []string) {
	sk := &st.skels[n]
	p := st.projects[sk.proj]
	for b, l := range labelPool {
		if sk.labels&(1<<b) != 0 {
			labels = append(labels, l)
		}
	}
	*v = jql.Issue{ID: 10000 + int64(n), Key: p.key + "-" + strconv.Itoa(int(sk.num)),
		ProjectID: p.idStr, ProjectKey: p.key, ProjectName: p.name,
		IssueType: issueTypes[sk.typ], Status: statuses[sk.status], Labels: labels,
		Assignee: st.person(sk.assignee), Reporter: st.person(sk.reporter),
		Created: time.UnixMilli(sk.created).UTC(), Updated: time.UnixMilli(sk.updated).UTC(),
		Source: st}
	if sk.points > 0 {
		v.Numbers = st.pointsMaps[sk.points]
	}
}

// Summary and Texts make a site the jql.TextSource of its skeleton views.
func (st *site) Summary(id int64) string { return st.summaryOf(int32(id - 10000)) }

// Texts generates the issue to read its description and comments.
func (st *site) Texts(id int64) (string, string) {
	is := st.build(int32(id - 10000))
	return adfText(is.description), commentText(is)
}

func commentText(is *issue) string {
	var b strings.Builder
	for _, c := range is.comments {
		b.WriteString(adfText(c.body))
		b.WriteString("\n")
	}
	return b.String()
}

// index builds the JQL view of a live issue as it is now (a snapshot: later edits build a new one).
func (is *issue) index() *jql.Issue {
	v := &jql.Issue{
		ID: is.id, Key: is.key,
		ProjectID: is.project.idStr, ProjectKey: is.project.key, ProjectName: is.project.name,
		IssueType: is.issueType, Status: is.status, Labels: append([]string(nil), is.labels...),
		Assignee: is.assignee, Reporter: is.reporter, Created: is.created, Updated: is.updated,
		Summary: is.summary, Description: adfText(is.description), Comments: commentText(is),
	}
	if is.custom.storyPoints != nil {
		v.Numbers = map[int64]float64{10016: *is.custom.storyPoints}
	}
	return v
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

// projectOf is the project issue n is in now (a move changes it).
func (st *site) projectOf(n int32) *project {
	if is := st.live[n]; is != nil {
		return is.project
	}
	return st.projects[st.skels[n].proj]
}

func (st *site) deleted(n int32) bool {
	is := st.live[n]
	return is != nil && is.deleted
}

// Sites returns the seeded sites and their projects.
func (s *Server) Sites() []Site {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Site, 0, len(s.data.sites))
	for _, st := range s.data.sites {
		v := Site{CloudID: st.cloudID, Name: st.name, URL: st.url}
		counts := map[*project]int{}
		for n := range st.skels {
			if !st.deleted(int32(n)) {
				counts[st.projectOf(int32(n))]++
			}
		}
		for _, p := range st.projects {
			pi := ProjectInfo{ID: strconv.FormatInt(p.id, 10), Key: p.key, Name: p.name, Issues: counts[p]}
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

var _ jql.TextSource = (*site)(nil)
