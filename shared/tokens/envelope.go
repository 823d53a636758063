package tokens

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// encVersion names the envelope format, so a later format can be told apart from this one.
const encVersion = "kms-aes256gcm-v1"

const purpose = "oauth-token"

// envelope is one sealed payload: the KMS-encrypted data key and the AES-256-GCM ciphertext it protects.
type envelope struct {
	edk, nonce, ct []byte
}

// secret is the only part of a record that is encrypted.
type secret struct {
	AccessToken  string `json:"a"`
	RefreshToken string `json:"r"`
}

// encryptionContext binds a record to its connection: KMS refuses to decrypt the data key under another
// connection id, and CloudTrail shows which connection each decryption was for.
func encryptionContext(connID string) map[string]string {
	return map[string]string{"connectionId": connID, "purpose": purpose}
}

// additionalData is the same binding for GCM, so the payload itself (not just the key) is tied to the connection
// and format: a record whose data key were somehow decrypted under another context still fails to open.
func additionalData(connID string) []byte {
	b, _ := json.Marshal(encryptionContext(connID)) // map keys marshal sorted: deterministic
	return append([]byte(encVersion+"\n"), b...)
}

func (s *Store) seal(ctx context.Context, connID, access, refresh string) (envelope, error) {
	// The tokens are marshalled only to become the plaintext that GCM seals below (and is cleared after).
	pt, err := json.Marshal(secret{AccessToken: access, RefreshToken: refresh}) //nolint:gosec // G117: sealed at once, never stored or logged

	if err != nil {
		return envelope{}, fmt.Errorf("tokens: encode payload: %w", err)
	}
	defer clear(pt)
	dk, err := s.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(s.keyID),
		KeySpec:           kmstypes.DataKeySpecAes256,
		EncryptionContext: encryptionContext(connID),
	})
	if err != nil {
		return envelope{}, fmt.Errorf("tokens: generate data key: %w", err)
	}
	defer clear(dk.Plaintext)
	gcm, err := newGCM(dk.Plaintext)
	if err != nil {
		return envelope{}, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return envelope{}, fmt.Errorf("tokens: nonce: %w", err)
	}
	return envelope{edk: dk.CiphertextBlob, nonce: nonce, ct: gcm.Seal(nil, nonce, pt, additionalData(connID))}, nil
}

func (s *Store) open(ctx context.Context, connID string, env envelope) (secret, error) {
	if len(env.edk) == 0 || len(env.ct) == 0 {
		return secret{}, errors.New("tokens: record has no ciphertext")
	}
	out, err := s.kms.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    env.edk,
		EncryptionContext: encryptionContext(connID),
		KeyId:             aws.String(s.keyID), // refuse a data key wrapped by any other key
	})
	if err != nil {
		return secret{}, fmt.Errorf("tokens: decrypt data key for %s: %w", connID, err)
	}
	defer clear(out.Plaintext)
	gcm, err := newGCM(out.Plaintext)
	if err != nil {
		return secret{}, err
	}
	if len(env.nonce) != gcm.NonceSize() {
		return secret{}, errors.New("tokens: bad nonce")
	}
	pt, err := gcm.Open(nil, env.nonce, env.ct, additionalData(connID))
	if err != nil {
		return secret{}, fmt.Errorf("tokens: open payload for %s: %w", connID, err)
	}
	defer clear(pt)
	var sec secret
	if err := json.Unmarshal(pt, &sec); err != nil {
		return secret{}, fmt.Errorf("tokens: decode payload: %w", err)
	}
	return sec, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("tokens: data key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("tokens: gcm: %w", err)
	}
	return gcm, nil
}
