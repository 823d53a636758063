package export

import (
	"strconv"
	"strings"
)

// splitOrderBy returns jql without its top-level ORDER BY clause (outside quotes and parentheses). The export
// imposes its own order (by id, which no edit changes), so a user's order is dropped, never an error.
func splitOrderBy(jql string) string {
	depth := 0
	var quote byte
	for i := 0; i < len(jql); i++ {
		c := jql[i]
		switch {
		case quote != 0:
			switch c {
			case '\\':
				i++
			case quote:
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && (c == 'o' || c == 'O') && (i == 0 || !isWordByte(jql[i-1])):
			rest := strings.ToLower(jql[i:])
			if strings.HasPrefix(rest, "order") && len(rest) > 5 && !isWordByte(rest[5]) {
				after := strings.TrimLeft(rest[5:], " \t\r\n")
				if strings.HasPrefix(after, "by") && (len(after) == 2 || !isWordByte(after[2])) {
					return strings.TrimSpace(jql[:i])
				}
			}
		}
	}
	return strings.TrimSpace(jql)
}

func isWordByte(c byte) bool {
	return c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// searchJQL is the JQL of a search phase: the connector's filter, issues updated at or after sinceMs (epoch
// milliseconds, which Jira reads without a time zone; 0: all) and after afterID (a restart after an expired
// cursor; 0: from the start), ordered by id.
func searchJQL(base string, sinceMs, afterID int64) string {
	var b strings.Builder
	b.WriteString("(")
	b.WriteString(base)
	b.WriteString(")")
	if sinceMs > 0 {
		b.WriteString(" AND updated >= " + strconv.FormatInt(sinceMs, 10))
	}
	if afterID > 0 {
		b.WriteString(" AND id > " + strconv.FormatInt(afterID, 10))
	}
	b.WriteString(" ORDER BY id ASC")
	return b.String()
}
