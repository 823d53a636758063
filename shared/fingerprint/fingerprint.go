// Package fingerprint computes the keyed, non-reversible fingerprint of the Atlassian account behind a grant, so
// a connection can refuse a re-authorisation by another account without ever storing an account id.
//
// The fingerprint is HMAC-SHA256, computed inside KMS (GenerateMac) under an HMAC key of this deployment
// (ACCOUNT_KEY_ID), over the connection id and the account id. The key never leaves KMS, so a fingerprint cannot
// be reversed, recomputed by anyone without kms:GenerateMac on that key, or linked to the same account's
// fingerprint in another deployment or in another connection of this one.
package fingerprint

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// version prefixes every fingerprint, so a later scheme can be told apart from this one.
const version = "v1:"

// domain separates these MACs from any other use of the key.
const domain = "jiraexport/atlassian-account-fingerprint/v1"

// Keyer computes fingerprints with one KMS HMAC key. It is safe for concurrent use.
type Keyer struct {
	kms   *kms.Client
	keyID string
}

// New returns a Keyer on the HMAC_256 key keyID.
func New(kmsc *kms.Client, keyID string) *Keyer { return &Keyer{kms: kmsc, keyID: keyID} }

// Of returns the fingerprint of accountID as the owner of connection connID.
func (k *Keyer) Of(ctx context.Context, connID, accountID string) (string, error) {
	if connID == "" || accountID == "" {
		return "", errors.New("fingerprint: connection id and account id are required")
	}
	// NUL cannot occur in either id, so the message is unambiguous.
	msg := []byte(domain + "\x00" + connID + "\x00" + accountID)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := k.kms.GenerateMac(ctx, &kms.GenerateMacInput{
		KeyId: aws.String(k.keyID), MacAlgorithm: kmstypes.MacAlgorithmSpecHmacSha256, Message: msg,
	})
	if err != nil {
		return "", fmt.Errorf("fingerprint: generate MAC: %w", err)
	}
	if len(out.Mac) != 32 {
		return "", fmt.Errorf("fingerprint: MAC of %d bytes, want 32", len(out.Mac))
	}
	return version + base64.RawURLEncoding.EncodeToString(out.Mac), nil
}

// Equal reports whether two fingerprints are the same, in constant time. An empty or malformed fingerprint
// equals nothing, so a connection without one can never be matched.
func Equal(a, b string) bool {
	if !strings.HasPrefix(a, version) || !strings.HasPrefix(b, version) || len(a) <= len(version) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
