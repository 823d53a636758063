// Package mirror owns the S3 layout of an export and its writes. Everything of a connection lives under
// <connectionId>/, per connector under <connectionId>/<connectorId>/ (so erasure is a prefix delete):
//
//	issues/<issueId>.json       the issue's latest state (schema issue.v1)
//	issues/<issueId>.md         its Markdown (export content; later)
//	attachments/<attachmentId>  attachment bytes (export content; later)
//	manifests/<runId>.json      what one run changed (schema manifest.v1)
//
// Every PutObject names SSE-KMS and the stack's key explicitly, and its content type. Documents hold nothing of
// the time they were exported, so writing the same state twice (a retry after a crash) writes the same bytes.
package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Schemas are the versioned JSON Schemas of the documents (schema/issue.v1.json, schema/manifest.v1.json).
//
//go:embed schema/*.json
var Schemas embed.FS

// Document kinds and versions, as each document's "schema" member names them.
const (
	IssueSchema    = "issue.v1"
	ManifestSchema = "manifest.v1"
)

// Content types.
const (
	JSONType = "application/json"
)

// Prefix is the connector's folder.
func Prefix(connID, connectorID string) string { return connID + "/" + connectorID + "/" }

// IssueKey is where an issue's JSON document lives.
func IssueKey(connID, connectorID, issueID string) string {
	return Prefix(connID, connectorID) + "issues/" + issueID + ".json"
}

// IssueMarkdownKey is where an issue's Markdown lives.
func IssueMarkdownKey(connID, connectorID, issueID string) string {
	return Prefix(connID, connectorID) + "issues/" + issueID + ".md"
}

// AttachmentKey is where an attachment's bytes live.
func AttachmentKey(connID, connectorID, attachmentID string) string {
	return Prefix(connID, connectorID) + "attachments/" + attachmentID
}

// ManifestKey is where a run's manifest lives.
func ManifestKey(connID, connectorID, runID string) string {
	return Prefix(connID, connectorID) + "manifests/" + runID + ".json"
}

// Hash is the content hash the index keeps (hex SHA-256).
func Hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Writer writes and deletes mirror objects in one bucket under one KMS key.
type Writer struct {
	s3     *s3.Client
	bucket string
	keyID  string
}

// NewWriter returns a Writer.
func NewWriter(c *s3.Client, bucket, kmsKeyID string) *Writer {
	return &Writer{s3: c, bucket: bucket, keyID: kmsKeyID}
}

// Put writes body at key, encrypted under the stack's key, with its SHA-256 checked by S3.
func (w *Writer) Put(ctx context.Context, key string, body []byte, contentType string) error {
	sum := sha256.Sum256(body)
	_, err := w.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &w.bucket, Key: &key, Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
		ContentType:          aws.String(contentType),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: &w.keyID,
		BucketKeyEnabled:  aws.Bool(true),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	if err != nil {
		return fmt.Errorf("mirror: put object: %w", err)
	}
	return nil
}

// Delete removes key (deleting a missing object succeeds, so a retried removal is harmless).
func (w *Writer) Delete(ctx context.Context, key string) error {
	if _, err := w.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &w.bucket, Key: &key}); err != nil {
		return fmt.Errorf("mirror: delete object: %w", err)
	}
	return nil
}
