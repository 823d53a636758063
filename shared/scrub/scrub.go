// Package scrub removes Atlassian account ids (and, unless asked to keep them, e-mail addresses) from Jira JSON
// before anything of it is stored. It works on decoded JSON (map[string]any, []any, strings, numbers), walking
// every value, so it needs no knowledge of a document's shape to be safe: the places it knows (user objects, ADF
// mention nodes, changelog items of user fields, user-picker custom fields) are cleaned by rule, and any other
// string that holds something shaped like an account id has that id cut out.
package scrub

import (
	"strings"
	"unicode/utf8"
)

// Options say what to keep.
type Options struct {
	// KeepEmails keeps users' emailAddress (a connector option may ask for it); default: dropped.
	KeepEmails bool
	// UserFields are the ids of fields whose values are users (from /rest/api/3/field: schema type "user", or
	// "array" of "user"), e.g. user-picker custom fields. Their changelog items' from/to are account ids.
	UserFields map[string]bool
	// Person, when set, names every person the scrubber meets instead of their display name: user objects'
	// displayName, ADF mention text ("@" + name) and the fromString/toString of changelog items of user fields. It
	// is handed the account id (empty when the value carries none) before the id is removed, and the display name
	// Jira sent; what it returns is written in their place (e.g. a pseudonym). Nil keeps display names.
	Person func(accountID, displayName string) string
}

// Account id shapes: "557058:<uuid>" (and other numeric prefixes of 1 to 10 digits, optionally followed by a second
// ":<uuid>"), 24 hex digits, "qm:<uuid>[:<uuid>]" (Jira Service Management customers), and "ug:<uuid>[:<uuid>]"
// user-group style ids, in either case. Boundaries (the start or end of the string, or a character that is not an
// ASCII letter or digit) keep a 40-digit git hash or a longer hex string from matching in part. The regular
// expression in scrub_test.go states the same shapes and is the specification findAccountID is fuzzed against; it
// is not used here because Go's regexp backtracker costs microseconds per string and every string of every exported
// document meets it (it was a fifth of the export's CPU per issue).

// Removed replaces an account id found inside a string the scrubber has no rule for.
const Removed = "[account-id-removed]"

// systemUserFields are Jira's built-in user fields.
var systemUserFields = map[string]bool{"assignee": true, "reporter": true, "creator": true, "watcher": true,
	"voter": true}

// LooksLikeAccountID reports whether s contains something shaped like an account id.
func LooksLikeAccountID(s string) bool {
	if !mayHoldAccountID(s) {
		return false
	}
	start, _ := findAccountID(s)
	return start >= 0
}

// mayHoldAccountID is a one-pass filter in front of the pattern, which every string of every exported document
// meets: Go's regexp cannot skip ahead on a pattern that begins with a boundary class, so it costs microseconds
// per string, and the export's CPU time was mostly this. Every alternative of the pattern holds either 24 hex
// digits in a row or a UUID, which starts with 8 hex digits and a '-'; a string with neither cannot match
// (FuzzFilterAgreesWithPattern holds the two together).
func mayHoldAccountID(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			run++
			if run >= 24 {
				return true
			}
		case c == '-' && run >= 8:
			return true
		default:
			run = 0
		}
	}
	return false
}

// String cuts every account-id-shaped token out of s.
func String(s string) string {
	if !LooksLikeAccountID(s) {
		return s
	}
	// Replace only the id, keeping the boundary characters; search again from the start after each cut, as the
	// specification's regexp replacement did.
	for {
		start, end := findAccountID(s)
		if start < 0 {
			return s
		}
		s = s[:start] + Removed + s[end:]
	}
}

// Value scrubs a decoded JSON value in place where it can and returns the result (use the result: a top-level
// string is returned changed).
func Value(v any, o Options) any {
	return o.walk(v, "")
}

func (o Options) walk(v any, field string) any {
	switch x := v.(type) {
	case map[string]any:
		o.object(x, field)
		return x
	case []any:
		out := x[:0]
		for _, e := range x {
			if s, ok := e.(string); ok && o.userField(field) && LooksLikeAccountID(s) {
				continue // an account id in a list of users: drop the element
			}
			out = append(out, o.walk(e, field))
		}
		return out
	case string:
		return String(x)
	}
	return v
}

func (o Options) userField(id string) bool {
	return id != "" && (systemUserFields[id] || o.UserFields[id])
}

// isKeyOfAccountID reports whether k lowered contains "accountid". It runs for every key of every object
// exported, so ASCII keys are compared in place, without the allocation of strings.ToLower; a key with other
// runes takes the lowering path (Go lowers U+0130 to an ASCII i).
func isKeyOfAccountID(k string) bool {
	const w = "accountid"
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			return strings.Contains(strings.ToLower(k), w)
		}
	}
	for i := 0; i+len(w) <= len(k); i++ {
		j := 0
		for ; j < len(w); j++ {
			c := k[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != w[j] {
				break
			}
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// object scrubs one JSON object. field is the id of the field whose value it is (or sits in), when known.
func (o Options) object(m map[string]any, field string) {
	user := isUserObject(m)
	// Decided before the walk below rewrites shaped ids in from/to.
	item := userItem(m)
	var named func()
	if o.Person != nil {
		named = o.person(m, user) // reads the ids before the walk below removes them
	}
	for k, val := range m {
		switch {
		case isKeyOfAccountID(k):
			delete(m, k) // accountId, tmpFromAccountId, tmpToAccountId, ...
			continue
		case LooksLikeAccountID(k):
			delete(m, k) // a map keyed by account ids
			continue
		case k == "emailAddress" && !o.KeepEmails:
			delete(m, k)
			continue
		case user && (k == "self" || k == "avatarUrls" || k == "key" || k == "name"):
			// A user's self URL and avatar URLs carry the account id; key and name are legacy ids.
			delete(m, k)
			continue
		}
		sub := field
		if o.userField(k) {
			sub = k
		}
		if f, ok := m["fieldId"].(string); ok {
			sub = f
		}
		if s, ok := val.(string); ok && o.userField(sub) && LooksLikeAccountID(s) {
			delete(m, k) // a user-valued field (or a changelog item of one) holding a bare account id
			continue
		}
		m[k] = o.walk(val, sub)
	}
	if named != nil {
		named()
	}
	// ADF mention node: attrs.id is the mentioned person's account id; the text (their display name) stays.
	if t, _ := m["type"].(string); t == "mention" {
		if attrs, ok := m["attrs"].(map[string]any); ok {
			delete(attrs, "id")
		}
	}
	// A changelog item of a user field: from/to are account ids; fromString/toString are display names.
	if f, ok := m["fieldId"].(string); ok && (o.userField(f) || item) {
		delete(m, "from")
		delete(m, "to")
	}
}

// isUserObject recognises Jira's user shape even after accountId is gone (its order in the map is random).
func isUserObject(m map[string]any) bool {
	if _, ok := m["accountId"]; ok {
		return true
	}
	_, dn := m["displayName"]
	_, at := m["accountType"]
	_, av := m["avatarUrls"]
	return dn && (at || av)
}

// userItem reports whether a changelog item is about a user field though its fieldId is not known as one.
func userItem(m map[string]any) bool {
	if f, _ := m["field"].(string); systemUserFields[strings.ToLower(f)] {
		return true
	}
	for _, k := range []string{"from", "to"} {
		if s, ok := m[k].(string); ok && LooksLikeAccountID(s) {
			return true
		}
	}
	return false
}

// person returns what renames the people of m (nil when m names nobody) once m is scrubbed. It captures the
// account ids first, since scrubbing removes them.
func (o Options) person(m map[string]any, user bool) func() {
	switch {
	case user:
		id, _ := m["accountId"].(string)
		name, _ := m["displayName"].(string)
		return func() { m["displayName"] = o.Person(id, name) }
	case m["type"] == "mention":
		attrs, ok := m["attrs"].(map[string]any)
		if !ok {
			return nil
		}
		id, _ := attrs["id"].(string)
		text, _ := attrs["text"].(string)
		return func() { attrs["text"] = "@" + o.Person(id, strings.TrimPrefix(text, "@")) }
	}
	f, ok := m["fieldId"].(string)
	if !ok || (!o.userField(f) && !userItem(m)) {
		return nil
	}
	type side struct{ id, name string }
	var sides [2]side
	for i, k := range []string{"from", "to"} {
		sides[i].id, _ = m[k].(string)
		sides[i].name, _ = m[k+"String"].(string)
	}
	return func() {
		for i, k := range []string{"fromString", "toString"} {
			if s := sides[i]; s.id != "" || s.name != "" {
				m[k] = o.people(s.id, s.name)
			}
		}
	}
}

// people names the people of one side of a changelog item: one account id, or several (a multi-user picker's
// from/to list them comma-separated, like its fromString lists their names).
func (o Options) people(ids, names string) string {
	found := accountIDs(ids)
	if len(found) <= 1 {
		id := ""
		if len(found) == 1 {
			id = found[0]
		}
		return o.Person(id, names)
	}
	ns := strings.Split(names, ", ")
	out := make([]string, len(found))
	for i, id := range found {
		n := ""
		if len(ns) == len(found) {
			n = ns[i]
		}
		out[i] = o.Person(id, n)
	}
	return strings.Join(out, ", ")
}

// accountIDs returns every account id in s, in order.
func accountIDs(s string) []string {
	var out []string
	for s != "" {
		start, end := findAccountID(s)
		if start < 0 {
			break
		}
		out = append(out, s[start:end])
		s = s[end:]
	}
	return out
}

// findAccountID returns where the first account id of s is, [start, end), or -1, -1: the leftmost match of the
// specification's pattern, its alternatives tried in order (numeric prefix, qm/ug, 24 hex), a second UUID taken
// when the boundary after it holds. An id may start at the beginning of s or right after a boundary character.
func findAccountID(s string) (int, int) {
	for i := 0; i < len(s); {
		if end := accountIDAt(s, i); end >= 0 {
			return i, end
		}
		// Move to the next position that follows a boundary character.
		for i < len(s) {
			r, w := utf8.DecodeRuneInString(s[i:])
			i += w
			if !isWordRune(r) {
				break
			}
		}
	}
	return -1, -1
}

// accountIDAt returns the end of the account id starting at i, or -1.
func accountIDAt(s string, i int) int {
	digits := 0
	for i+digits < len(s) && digits <= 10 && s[i+digits] >= '0' && s[i+digits] <= '9' {
		digits++
	}
	if digits >= 1 && digits <= 10 && i+digits < len(s) && s[i+digits] == ':' {
		if end := uuidsAt(s, i+digits+1); end >= 0 {
			return end
		}
	}
	if i+3 <= len(s) && s[i+2] == ':' {
		if p := strings.ToLower(s[i : i+2]); p == "qm" || p == "ug" {
			if end := uuidsAt(s, i+3); end >= 0 {
				return end
			}
		}
	}
	if i+24 <= len(s) && hexRun(s[i:i+24]) && boundaryAt(s, i+24) {
		return i + 24
	}
	return -1
}

// uuidsAt returns the end of one UUID at j, or of two joined by ':', followed by a boundary; -1 if neither.
func uuidsAt(s string, j int) int {
	if !uuidAt(s, j) {
		return -1
	}
	first := j + uuidLen
	if first < len(s) && s[first] == ':' && uuidAt(s, first+1) && boundaryAt(s, first+1+uuidLen) {
		return first + 1 + uuidLen
	}
	if boundaryAt(s, first) {
		return first
	}
	return -1
}

const uuidLen = 36

// uuidAt reports whether a UUID (8-4-4-4-12 hex digits) starts at j.
func uuidAt(s string, j int) bool {
	if j+uuidLen > len(s) {
		return false
	}
	u := s[j : j+uuidLen]
	for k := 0; k < uuidLen; k++ {
		if k == 8 || k == 13 || k == 18 || k == 23 {
			if u[k] != '-' {
				return false
			}
		} else if !isHex(u[k]) {
			return false
		}
	}
	return true
}

func hexRun(s string) bool {
	for k := 0; k < len(s); k++ {
		if !isHex(s[k]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// boundaryAt reports whether an id may end at e: the end of s, or a character that is not a letter or digit.
func boundaryAt(s string, e int) bool {
	if e >= len(s) {
		return e == len(s)
	}
	r, _ := utf8.DecodeRuneInString(s[e:])
	return !isWordRune(r)
}

// isWordRune: ASCII letters and digits, and the two runes Unicode case folding joins to them (the Kelvin sign to k,
// the long s to s), as the specification's case-insensitive [0-9a-z] has them.
func isWordRune(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '\u212a' || r == '\u017f'
}
