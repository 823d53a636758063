package oauthflow

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
)

// CSRFCookieName holds the re-authorisation page's double-submit token. __Host- (Secure, Path=/, no Domain)
// means no other site or subdomain can set it; SameSite=Strict keeps it off every cross-site request.
const CSRFCookieName = "__Host-jxk_reauth"

// csrfLen is the length of a token: 32 random bytes in unpadded base64url.
const csrfLen = 43

func newCSRFToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

func wellFormedCSRF(s string) bool {
	if len(s) != csrfLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// csrfMatch reports whether the form's token is the cookie's, in constant time.
func csrfMatch(cookie, form string) bool {
	return wellFormedCSRF(cookie) && wellFormedCSRF(form) && subtle.ConstantTimeCompare([]byte(cookie), []byte(form)) == 1
}

// origin is the scheme://host of an absolute URL, as browsers write it in the Origin header.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
