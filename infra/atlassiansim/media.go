package atlassiansim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MediaTokenTTL is the lifetime of the signed download link (a public example shows exp-nbf = 600 s).
const MediaTokenTTL = 600 * time.Second

// attachmentContent is GET /rest/api/3/attachment/content/{id} (and thumbnail/{id}): 303 to a signed media URL by
// default, or the bytes themselves with redirect=false (honouring Range).
func (c *call) attachmentContent() response {
	a := c.findAttachment(c.r.PathValue("id"))
	if a == nil {
		return jiraErr(http.StatusNotFound, "The attachment with the specified ID does not exist, or you do not have permission to view it.")
	}
	c.points++
	redirect := true
	if v := c.r.URL.Query().Get("redirect"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return jiraErr(http.StatusBadRequest, "redirect must be true or false.")
		}
		redirect = b
	}
	if redirect {
		loc := c.s.mediaURLLocked(c.site, a, c.now)
		return response{status: http.StatusSeeOther, header: http.Header{"Location": {loc}, "Cache-Control": {"no-cache, no-store"}}}
	}
	rg, status := parseRange(c.r.Header.Get("Range"), a.size)
	if status != 0 {
		return rangeError(status, a.size)
	}
	prof, r := c.s.latency, c.r
	return response{stream: func(w http.ResponseWriter) int64 { return serveStream(w, prof.bodyWriter(w, r), a, rg) }}
}

func rangeError(status int, size int64) response {
	h := http.Header{}
	if status == http.StatusRequestedRangeNotSatisfiable {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
	}
	r := jiraErr(status, map[int]string{
		http.StatusBadRequest:                   "The Range header is malformed.",
		http.StatusRequestedRangeNotSatisfiable: "The requested range is not satisfiable.",
	}[status])
	r.header = h
	return r
}

func (c *call) findAttachment(idStr string) *attachment {
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil {
		return nil
	}
	a := c.site.attachment(id)
	if a == nil || !a.issue.project.canBrowse(c.user.AccountID) {
		return nil
	}
	return a
}

// attachment finds an attachment of a live or generated issue by id; nil when unknown, removed from its issue, or
// on a deleted issue. The id encodes the issue's ordinal (attachmentID).
func (st *site) attachment(id int64) *attachment {
	if id < 10000 {
		return nil
	}
	n := int32((id - 10000) / maxAttachmentsPerIssue)
	is := st.issue(n)
	if is == nil || is.deleted {
		return nil
	}
	for _, a := range is.attachments {
		if a.id == id {
			return a
		}
	}
	return nil
}

// attachmentMetadata is GET /rest/api/3/attachment/{id}; here the id is a number, unlike in issue fields.
func (c *call) attachmentMetadata() response {
	a := c.findAttachment(c.r.PathValue("id"))
	if a == nil {
		return jiraErr(http.StatusNotFound, "The attachment with the specified ID does not exist, or you do not have permission to view it.")
	}
	c.points++
	m := c.renderAttachment(a)
	m["id"] = a.id
	m["properties"] = map[string]any{}
	return jsonResponse(http.StatusOK, m)
}

func (c *call) attachmentMeta() response {
	return jsonResponse(http.StatusOK, map[string]any{"enabled": true, "uploadLimit": 1000000000})
}

// byteRange is an inclusive range; full means no Range header was sent.
type byteRange struct {
	start, end int64
	full       bool
}

// parseRange accepts one `bytes=` range. It returns status 400 for a malformed header (multiple ranges included:
// the simulator does not do multipart answers) and 416 for a range outside the entity.
func parseRange(h string, size int64) (byteRange, int) {
	if h == "" {
		return byteRange{0, size - 1, true}, 0
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return byteRange{}, http.StatusBadRequest
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return byteRange{}, http.StatusBadRequest
	}
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return byteRange{}, http.StatusBadRequest
		}
		if n == 0 || size == 0 {
			return byteRange{}, http.StatusRequestedRangeNotSatisfiable
		}
		return byteRange{max(0, size-n), size - 1, false}, 0
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return byteRange{}, http.StatusBadRequest
	}
	end := size - 1
	if last != "" {
		if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
			return byteRange{}, http.StatusBadRequest
		}
		end = min(end, size-1)
	}
	if start >= size {
		return byteRange{}, http.StatusRequestedRangeNotSatisfiable
	}
	return byteRange{start, end, false}, 0
}

// serveStream writes an attachment's headers to w and its bytes to body (w, or w paced by a bandwidth cap).
func serveStream(w http.ResponseWriter, body io.Writer, a *attachment, rg byteRange) int64 {
	h := w.Header()
	h.Set("Content-Type", a.mimeType)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.filename}))
	h.Set("Accept-Ranges", "bytes")
	n := rg.end - rg.start + 1
	if a.size == 0 {
		n = 0
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	status := http.StatusOK
	if !rg.full {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rg.start, rg.end, a.size))
	}
	w.WriteHeader(status)
	if n == 0 {
		return 0
	}
	sent, _ := io.Copy(body, io.NewSectionReader(newContent(a), rg.start, n))
	return sent
}

// content generates an attachment's bytes from its seed: any offset can be read without producing what comes
// before it, so a 1 GiB attachment costs no memory and Range requests are cheap. Text types get printable bytes,
// some binary types a real magic number.
type content struct {
	seed   uint64
	size   int64
	text   bool
	header []byte
}

func newContent(a *attachment) *content {
	c := &content{seed: a.seed, size: a.size, text: strings.HasPrefix(a.mimeType, "text/") || a.mimeType == "application/json"}
	switch a.mimeType {
	case "image/png":
		c.header = []byte("\x89PNG\r\n\x1a\n")
	case "application/pdf":
		c.header = []byte("%PDF-1.7\n")
	case "application/zip":
		c.header = []byte("PK\x03\x04")
	case "image/jpeg":
		c.header = []byte("\xff\xd8\xff\xe0")
	}
	return c
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

const printable = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:\n"

// ReadAt fills p with the bytes at off.
func (c *content) ReadAt(p []byte, off int64) (int, error) {
	if off >= c.size {
		return 0, io.EOF
	}
	n := len(p)
	if rem := c.size - off; int64(n) > rem {
		n = int(rem)
	}
	var word [8]byte
	for i := 0; i < n; {
		pos := off + int64(i)
		if pos < int64(len(c.header)) {
			p[i] = c.header[pos]
			i++
			continue
		}
		w := splitmix(c.seed ^ uint64(pos)/8*0x100000001b3)
		if pos%8 == 0 && n-i >= 8 {
			// A whole word at once (the byte loop below was most of the simulator's CPU for a 1 GiB download).
			if c.text {
				for j := range 8 {
					p[i+j] = printable[int(byte(w>>(8*j)))%len(printable)]
				}
			} else {
				binary.LittleEndian.PutUint64(p[i:], w)
			}
			i += 8
			continue
		}
		binary.LittleEndian.PutUint64(word[:], w)
		for j := int(uint64(pos) % 8); j < 8 && i < n; j++ {
			b := word[j]
			if c.text {
				b = printable[int(b)%len(printable)]
			}
			p[i] = b
			i++
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// AttachmentContent returns a reader over the bytes the simulator serves for an attachment, for tests that compare
// what the product stored. It does not check permissions.
func (s *Server) AttachmentContent(cloudID string, attachmentID int64) (io.ReaderAt, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.data.siteByID[cloudID]
	var a *attachment
	if st != nil {
		a = st.attachment(attachmentID)
	}
	if a == nil {
		return nil, 0, fmt.Errorf("atlassiansim: no attachment %d on site %q", attachmentID, cloudID)
	}
	return newContent(a), a.size, nil
}

// mediaClaims is the payload of the media token, modelled on Atlassian's HS256 media JWT.
type mediaClaims struct {
	Issuer string              `json:"iss"`
	Access map[string][]string `json:"access"`
	NBF    int64               `json:"nbf"`
	Exp    int64               `json:"exp"`
}

// mediaRef is what the media host needs to find a file: the media platform knows files by UUID only.
type mediaRef struct {
	cloudID string
	attID   int64
}

// mediaURLLocked signs a download link on the media host, as api.media.atlassian.com's
// /file/<uuid>/binary?token=<JWT>&client=<id>&dl=true&name=<filename> (jira-cloud.md §3.7).
func (s *Server) mediaURLLocked(st *site, a *attachment, now time.Time) string {
	uuid := st.mediaFileID(a.id)
	s.mediaRefs[uuid] = mediaRef{st.cloudID, a.id}
	claims := mediaClaims{Issuer: s.cfg.ClientID, Access: map[string][]string{"urn:filestore:file:" + uuid: {"read"}},
		NBF: now.Unix(), Exp: now.Add(MediaTokenTTL).Unix()}
	q := url.Values{"token": {s.signJWT(claims)}, "client": {s.cfg.ClientID}, "dl": {"true"}, "name": {a.filename}}
	if s.mediaBase != "" {
		return s.mediaBase + "/file/" + uuid + "/binary?" + q.Encode()
	}
	return s.base + "/media/file/" + uuid + "/binary?" + q.Encode()
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (s *Server) signJWT(v any) string {
	b, _ := json.Marshal(v)
	signing := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(b)
	m := hmac.New(sha256.New, s.mediaKey)
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) verifyMediaToken(tok, uuid string, now time.Time) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return errors.New("malformed token")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return errors.New("malformed token")
	}
	m := hmac.New(sha256.New, s.mediaKey)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return errors.New("bad signature")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return errors.New("malformed token")
	}
	var cl mediaClaims
	if err := json.Unmarshal(b, &cl); err != nil {
		return errors.New("malformed token")
	}
	if now.Unix() < cl.NBF || now.Unix() >= cl.Exp {
		return errors.New("token expired")
	}
	if _, ok := cl.Access["urn:filestore:file:"+uuid]; !ok {
		return errors.New("token not valid for this file")
	}
	return nil
}

// handleMedia is the media host's GET /file/{uuid}/binary. It authorises by the signed token in the URL only;
// a request that also carries an Authorization header is refused with 401, the stricter reading of "do not send
// the bearer token to it": a client that leaks its Jira token across the redirect fails loudly here.
func (s *Server) handleMedia(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "Unauthorized",
			"title": "Authorization header not accepted", "message": "This URL is authorised by its token parameter; do not send an Authorization header."}})
		return
	}
	now := s.clock.Now()
	uuid := r.PathValue("uuid")
	if err := s.verifyMediaToken(r.URL.Query().Get("token"), uuid, now); err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "Unauthorized", "title": "Invalid token", "message": err.Error()}})
		return
	}
	s.mu.Lock()
	var a *attachment
	if ref, ok := s.mediaRefs[uuid]; ok {
		if st := s.data.siteByID[ref.cloudID]; st != nil {
			a = st.attachment(ref.attID)
		}
	}
	prof := s.latency
	s.mu.Unlock()
	if a == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "FileNotFound", "title": "File not found"}})
		return
	}
	rg, status := parseRange(r.Header.Get("Range"), a.size)
	if status != 0 {
		if status == http.StatusRequestedRangeNotSatisfiable {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", a.size))
		}
		writeJSON(w, status, map[string]any{"error": map[string]string{"code": "InvalidRange", "title": http.StatusText(status)}})
		return
	}
	n := serveStream(w, prof.bodyWriter(w, r), a, rg)
	s.mu.Lock()
	s.counts.BytesServed += n
	s.mu.Unlock()
}
