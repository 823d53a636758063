package connectors

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// A cursor names the last item of a page. It is opaque to clients but not secret: every query is confined to the
// authenticated connection's partition whatever the cursor says, and a cursor carries a tag of the connection and
// list it was minted for, so a cursor replayed on another connection or list is refused instead of misread.
type cursor struct {
	Tag  string `json:"t"`
	Last string `json:"k"`
}

func cursorTag(connID, list string) string {
	sum := sha256.Sum256([]byte("jiraexport cursor\x00" + connID + "\x00" + list))
	return hex.EncodeToString(sum[:8])
}

func encodeCursor(connID, list, lastSK string) string {
	b, _ := json.Marshal(cursor{Tag: cursorTag(connID, list), Last: lastSK})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the sort key to continue after, or ErrInvalidCursor.
func decodeCursor(connID, list, prefix, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > 512 {
		return "", ErrInvalidCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", ErrInvalidCursor
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.Tag != cursorTag(connID, list) || !strings.HasPrefix(c.Last, prefix) {
		return "", ErrInvalidCursor
	}
	return c.Last, nil
}
