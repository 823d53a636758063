package attachments

import (
	"fmt"
	"testing"
)

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 10-19/*", "bytes */10", "items 0-1/2", "bytes 5-/9", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, total, ok := parseContentRange(s)
		if !ok {
			return
		}
		// Whatever it accepts reads back: a well-formed header with the same first byte and total.
		s2 := fmt.Sprintf("bytes %d-%d/%d", start, start, total)
		if st2, tot2, ok2 := parseContentRange(s2); !ok2 || st2 != start || tot2 != total {
			t.Errorf("parseContentRange(%q) = %d, %d; its rendering %q reads back as %d, %d, %v", s, start, total, s2, st2, tot2, ok2)
		}
	})
}

func FuzzMediaTypeAllowed(f *testing.F) {
	f.Add("image/*", "image/png; charset=x")
	f.Add("*/*", "")
	f.Add("text/plain", "TEXT/PLAIN")
	f.Fuzz(func(t *testing.T, rng, mt string) {
		got := MediaTypeAllowed([]string{rng}, mt)
		if rng == "*/*" && !got {
			t.Errorf("MediaTypeAllowed(*/*, %q) = false", mt)
		}
		if got && rng != "*/*" && essence(mt) == "" {
			t.Errorf("MediaTypeAllowed(%q, %q) = true for a media type that does not parse", rng, mt)
		}
	})
}
