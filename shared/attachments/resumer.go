package attachments

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// resumer carries one pass of a resumable transfer (streamParts): it continues the State's multipart upload
// (CreateMultipartUpload returns its id, or creates it and records the id for a transfer from byte zero), sends
// the pass's part k as the State's part len(State.Parts at the pass's start)+k after the meter has read it, and
// records each finished part with the SHA-256 state at its end, so the State advances by the contiguous run of
// finished parts whatever stops the pass. completeUpload completes with every part of the State, earlier
// invocations' included, and the whole object's size. Nothing is aborted here: the failures a pass meets (a
// deadline, a dropped connection) are exactly the ones it resumes from; Transfer aborts the upload itself when a
// failure is permanent (see resumable).
type resumer struct {
	s3     *s3.Client
	bucket string
	m      *meter
	base   int64 // State.Done at the pass's start
	offset int   // len(State.Parts) at the pass's start

	completer completeSlowly // Transferor.completer

	mu       sync.Mutex
	st       *State
	waiting  map[int64]finished // finished parts of this pass not yet contiguous with State.Parts
	complete bool
}

// finished is one uploaded part, waiting to join the State.
type finished struct {
	part      Part
	end       int64  // offset after the part
	hashAfter []byte // SHA-256 state after the part
}

func newResumer(c *s3.Client, bucket string, st *State, m *meter, completer completeSlowly) *resumer {
	return &resumer{s3: c, bucket: bucket, m: m, base: st.Done, offset: len(st.Parts), st: st, waiting: map[int64]finished{},
		completer: completer}
}

func (r *resumer) completed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.complete
}

func (r *resumer) uploadID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.UploadID
}

// CreateMultipartUpload continues the State's upload, or creates it for a transfer from byte zero.
func (r *resumer) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	if aws.ToString(in.Key) != r.st.Key {
		return nil, fmt.Errorf("attachments: upload for another key: %w", ErrPermanent)
	}
	if id := r.uploadID(); id != "" {
		return &s3.CreateMultipartUploadOutput{Bucket: in.Bucket, Key: in.Key, UploadId: aws.String(id)}, nil
	}
	cp := *in
	cp.ChecksumAlgorithm = s3types.ChecksumAlgorithm(r.st.Checksum)
	out, err := r.s3.CreateMultipartUpload(ctx, &cp, opts...)
	if err != nil {
		return nil, fmt.Errorf("attachments: create upload for %s: %w: %w", r.st.AttachmentID, ErrRetryable, err)
	}
	r.mu.Lock()
	r.st.UploadID = aws.ToString(out.UploadId)
	r.mu.Unlock()
	return out, nil
}

// streamPart uploads part k of this pass (the State's part offset+k) with its bytes read from the meter as they
// are sent, then checks that the meter's cut for part k ends where the part does and records it. The SDK does not
// retry it: a body read from the media cannot be read again.
func (r *resumer) streamPart(ctx context.Context, k int64, body *partBody, size int64) error {
	num, ok := partNumber(r.offset + int(min(k, maxParts+1)) - 1)
	if !ok {
		return fmt.Errorf("attachments: part %d of %s exceeds S3's %d parts: %w", int64(r.offset)+k, r.st.AttachmentID, maxParts, ErrPermanent)
	}
	out, err := r.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(r.bucket), Key: aws.String(r.st.Key),
		UploadId: aws.String(r.uploadID()), PartNumber: aws.Int32(num), Body: body, ContentLength: aws.Int64(size),
		ChecksumAlgorithm: s3types.ChecksumAlgorithm(r.st.Checksum)}, streamed)
	if err != nil {
		switch {
		case errors.Is(err, ErrSizeMismatch), errors.Is(err, ErrRetryable), errors.Is(err, ErrPermanent):
			return err // the meter's: the media sent too much or too little, or broke off
		case isNoSuchUpload(err):
			return errNoSuchUpload
		case ctx.Err() != nil:
			return context.Cause(ctx)
		}
		return fmt.Errorf("attachments: upload part %d of %s: %w: %w", num, r.st.AttachmentID, ErrRetryable, err)
	}
	c, ok := r.m.cutAfter(k)
	start := (k - 1) * r.st.PartSize
	if !ok || c.end-start != size {
		return fmt.Errorf("attachments: part %d of %s does not match the bytes read: %w", k, r.st.AttachmentID, ErrPermanent)
	}
	r.record(k, finished{part: Part{Number: num, ETag: aws.ToString(out.ETag), CRC32: aws.ToString(out.ChecksumCRC32)},
		end: r.base + c.end, hashAfter: c.hash})
	return nil
}

// streamed are the options of a part streamed from the media: no retry by the SDK, and an unsigned payload (SigV4
// would hash the body before sending it, which a stream cannot give twice; S3 takes UNSIGNED-PAYLOAD, and over
// TLS the SDK's default for a stream is the same).
func streamed(o *s3.Options) {
	o.RetryMaxAttempts = 1
	o.APIOptions = append(o.APIOptions[:len(o.APIOptions):len(o.APIOptions)], v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// record adds a finished part and moves every part now contiguous with the State into it.
func (r *resumer) record(k int64, f finished) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting[k] = f
	for {
		next := int64(len(r.st.Parts) - r.offset + 1)
		f, ok := r.waiting[next]
		if !ok {
			return
		}
		delete(r.waiting, next)
		r.st.Parts = append(r.st.Parts, f.part)
		r.st.Done = f.end
		r.st.SHA256State = f.hashAfter
	}
}

// completeUpload completes the upload with every part of the State, not only this pass's.
func (r *resumer) completeUpload(ctx context.Context, opts []func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	r.mu.Lock()
	st := *r.st
	st.Parts = append([]Part(nil), r.st.Parts...)
	r.mu.Unlock()
	// The size check: S3 stores what the parts hold, so they must hold exactly Jira's size, and the meter must
	// have seen the body end there.
	if st.Done != st.Size || r.m.n != r.m.want || len(st.Parts) == 0 {
		return nil, fmt.Errorf("attachments: %s would complete with %d of %d bytes: %w", st.AttachmentID, st.Done, st.Size, ErrSizeMismatch)
	}
	parts := make([]s3types.CompletedPart, len(st.Parts))
	for i, p := range st.Parts {
		parts[i] = s3types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
		if p.CRC32 != "" {
			parts[i].ChecksumCRC32 = aws.String(p.CRC32)
		}
	}
	out, err := r.completer.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(r.bucket), Key: aws.String(st.Key), UploadId: aws.String(st.UploadID),
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
		MpuObjectSize:   aws.Int64(st.Size),
	}, opts...)
	if err != nil {
		if isNoSuchUpload(err) {
			return nil, errNoSuchUpload
		}
		return nil, fmt.Errorf("attachments: complete upload of %s: %w: %w", st.AttachmentID, ErrRetryable, err)
	}
	r.mu.Lock()
	r.complete = true
	r.mu.Unlock()
	return out, nil
}
