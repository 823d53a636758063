package attachments

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"jiraexport/infra/atlassiansim"
)

// interruptAt runs one invocation whose deadline comes while the media host stalls after stall bytes of its
// answer, and returns the state it leaves for the checkpoint, round-tripped through JSON as the export stores it.
func interruptAt(t *testing.T, f *fixture, a Attachment, resume *State, stall int64) *State {
	t.Helper()
	f.media.stallAt = stall
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	res, err := f.transferor(func(c *Config) { c.WholeMax = -1 }).Transfer(ctx, f.token, f.target(), a, resume)
	if !errors.Is(err, ErrInterrupted) || res.Resume == nil || res.Stored != nil {
		t.Fatalf("interrupted Transfer() = %+v, %v; want ErrInterrupted with a resume state", res, err)
	}
	if f.exists(t, a.ID) {
		t.Fatal("an object exists before the transfer finished")
	}
	if n := f.uploadsInProgress(t); n != 1 {
		t.Fatalf("uploads in progress after the deadline = %d, want the one kept for the next invocation", n)
	}
	b, err := json.Marshal(res.Resume)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return &back
}

// The resumable path streams the bytes not yet uploaded as the State's next parts: whatever the shape of the rest
// (several parts and a remainder, exactly whole parts, a remainder under one part, two interruptions in a row),
// each invocation downloads only what is not uploaded yet, and the object ends byte for byte with the SHA-256 of
// the whole attachment.
func TestResumeStreamsTheRest(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name   string
		size   int64
		stalls []int64 // media bytes (of each interrupted invocation's answer) after which it stalls
		done   []int64 // bytes uploaded after each interrupted invocation
	}{
		{"parts and a remainder after the resume", 24*mib + 12345, []int64{12 * mib}, []int64{10 * mib}},
		{"exactly whole parts after the resume", 15 * mib, []int64{11 * mib}, []int64{10 * mib}},
		{"a remainder under one part: the PutObject becomes the last part", 12*mib + 7, []int64{11 * mib}, []int64{10 * mib}},
		{"interrupted twice", 18*mib + 1, []int64{7 * mib, 11 * mib}, []int64{5 * mib, 15 * mib}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, simOptions{large: tt.size})
			a := f.find(t, func(a Attachment) bool { return a.Size == tt.size })
			var st *State
			for i, stall := range tt.stalls {
				f.sim.ResetCounters()
				st = interruptAt(t, f, a, st, stall)
				if st.Done != tt.done[i] || int64(len(st.Parts))*st.PartSize != st.Done || st.UploadID == "" {
					t.Fatalf("after invocation %d: done %d in %d parts of %d, want %d", i+1, st.Done, len(st.Parts), st.PartSize, tt.done[i])
				}
				if i > 0 {
					if served, want := f.sim.Counters().BytesServed, tt.size-tt.done[i-1]; served > want {
						t.Errorf("invocation %d downloaded %d bytes, more than the %d not yet uploaded", i+1, served, want)
					}
				}
			}
			f.sim.ResetCounters()
			res, err := f.transferor(func(c *Config) { c.WholeMax = -1 }).Transfer(t.Context(), f.token, f.target(), a, st)
			if err != nil {
				t.Fatalf("last Transfer() error = %v", err)
			}
			body, sum := f.want(t, a)
			if res.Stored == nil || *res.Stored != (Stored{ID: a.ID, Size: a.Size, SHA256: sum, MediaID: f.mediaID(t, a)}) {
				t.Fatalf("last Transfer() = %+v, want Stored{%s %d %s}", res, a.ID, a.Size, sum)
			}
			if served := f.sim.Counters().BytesServed; served != a.Size-st.Done {
				t.Errorf("last invocation downloaded %d bytes, want only the %d not yet uploaded (of %d)", served, a.Size-st.Done, a.Size)
			}
			f.checkObject(t, a, body)
			f.noBearerAtMedia(t)
			if n := f.uploadsInProgress(t); n != 0 {
				t.Errorf("%d multipart uploads left", n)
			}
		})
	}
}

// A real failure in the invocation that resumes (the attachment was deleted in Jira, or its bytes no longer
// match Jira's size) aborts the kept upload at once: no object, no incomplete upload left for the lifecycle rule.
func TestResumeFailureAborts(t *testing.T) {
	const size = 24<<20 + 12345
	tests := []struct {
		name    string
		setup   func(f *fixture) error
		shorter bool // Jira (and so the checkpoint) says one byte less than the media host serves
		want    error
	}{
		{"attachment gone", func(f *fixture) error {
			return f.sim.SetFault(atlassiansim.Fault{Endpoint: keyContent, Kind: atlassiansim.FaultStatus, Status: 404, Count: 1})
		}, false, ErrGone},
		{"body ends early after more parts were uploaded", func(f *fixture) error {
			f.media.cutAt = 6 << 20 // one more part fills, then the body ends cleanly short
			return nil
		}, false, ErrSizeMismatch},
		{"more bytes than Jira's size", func(*fixture) error { return nil }, true, ErrSizeMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, simOptions{large: size})
			a := f.find(t, func(a Attachment) bool { return a.Size == size })
			st := interruptAt(t, f, a, nil, 12<<20)
			if err := tt.setup(f); err != nil {
				t.Fatal(err)
			}
			if tt.shorter {
				a.Size--
				st.Size--
			}
			res, err := f.transferor(func(c *Config) { c.WholeMax = -1 }).Transfer(t.Context(), f.token, f.target(), a, st)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrPermanent) || res.Stored != nil || res.Resume != nil {
				t.Fatalf("Transfer() = %+v, %v; want %v and nothing to resume", res, err, tt.want)
			}
			if f.exists(t, a.ID) {
				t.Error("an object was left in the mirror")
			}
			if n := f.uploadsInProgress(t); n != 0 {
				t.Errorf("%d multipart uploads left after a permanent failure, want 0", n)
			}
		})
	}
}

// An attachment under one part sent down the resumable path (a negative WholeMax) is a one-part upload of its own.
func TestResumableSinglePart(t *testing.T) {
	f := newFixture(t, simOptions{})
	a := f.find(t, func(a Attachment) bool { return a.Size > 1000 })
	res, err := f.transferor(func(c *Config) { c.WholeMax = -1 }).Transfer(t.Context(), f.token, f.target(), a, nil)
	if err != nil {
		t.Fatalf("Transfer() error = %v", err)
	}
	body, sum := f.want(t, a)
	if res.Stored == nil || *res.Stored != (Stored{ID: a.ID, Size: a.Size, SHA256: sum, MediaID: f.mediaID(t, a)}) {
		t.Fatalf("Transfer() = %+v, want SHA-256 %s", res, sum)
	}
	f.checkObject(t, a, body)
	if n := f.uploadsInProgress(t); n != 0 {
		t.Errorf("%d multipart uploads left", n)
	}
}

// The meter stops every read at a part boundary and keeps the SHA-256 state there, whatever sizes the reader
// asks for, so each checkpointed state is the hash of exactly the bytes of the parts before it.
func TestMeterCutsAtPartBoundaries(t *testing.T) {
	data := make([]byte, 3*1000+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, chunk := range []int{1, 7, 999, 1000, 1001, 4096} {
		m := &meter{r: bytes.NewReader(data), h: sha256.New(), want: int64(len(data)), partSize: 1000}
		buf := make([]byte, chunk)
		for {
			if _, err := m.Read(buf); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("chunk %d: Read() error = %v", chunk, err)
			}
		}
		for k := int64(1); k <= 4; k++ {
			c, ok := m.cutAfter(k)
			wantEnd := min(k*1000, int64(len(data)))
			if !ok || c.end != wantEnd {
				t.Fatalf("chunk %d: cut %d = %d, %v; want end %d", chunk, k, c.end, ok, wantEnd)
			}
			h := sha256.New()
			if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(c.hash); err != nil {
				t.Fatal(err)
			}
			if got, want := h.Sum(nil), sha256.Sum256(data[:wantEnd]); !bytes.Equal(got, want[:]) {
				t.Errorf("chunk %d: hash state after part %d is not the SHA-256 of its %d bytes", chunk, k, wantEnd)
			}
		}
	}
}
