package atlassiansim

import (
	"fmt"
	"strconv"
)

// IssueShape is what one issue holds, in the counts that decide what exporting it costs: benchmarks compute
// the fewest points a site's data allows from these, without asking the simulator's API (which would spend
// points and move its meters).
type IssueShape struct {
	ID          string
	Project     string
	Comments    int
	Changelog   int
	Worklogs    int
	Attachments []AttachmentShape
}

// AttachmentShape is one attachment of an IssueShape.
type AttachmentShape struct {
	ID   string
	Size int64
}

// Shapes returns the shape of every live issue of a site, in id order. It builds each issue's body (without
// keeping it), so it takes a moment on a large site.
func (s *Server) Shapes(cloudID string) ([]IssueShape, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.data.sites {
		if st.cloudID != cloudID {
			continue
		}
		out := make([]IssueShape, 0, len(st.skels))
		for n := range st.skels {
			if st.deleted(int32(n)) {
				continue
			}
			is := st.issue(int32(n))
			sh := IssueShape{ID: strconv.FormatInt(is.id, 10), Project: is.project.key, Comments: len(is.comments),
				Changelog: len(is.histories), Worklogs: len(is.worklogs)}
			for _, a := range is.attachments {
				sh.Attachments = append(sh.Attachments, AttachmentShape{ID: strconv.FormatInt(a.id, 10), Size: a.size})
			}
			out = append(out, sh)
		}
		return out, nil
	}
	return nil, fmt.Errorf("atlassiansim: no site %q", cloudID)
}
