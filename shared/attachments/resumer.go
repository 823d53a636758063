package attachments

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// resumer is the S3 client of one pass's UploadObject: it makes the transfer package's upload of the rest of an
// attachment continue the State's multipart upload instead of starting its own. UploadObject (v0.5.8,
// api_op_UploadObject.go) reads its body in order into parts of PartSizeBytes numbered from 1, sends them to
// UploadPart from Concurrency workers, and then calls CompleteMultipartUpload once every part succeeded, or
// AbortMultipartUpload (with a fresh context) after any failure; a body shorter than MultipartUploadThreshold
// becomes one PutObject. So, bound to the State:
//
//   - CreateMultipartUpload returns the State's upload id when there is one (and creates it, recording its id,
//     when there is not);
//   - UploadPart sends the package's part k as part len(State.Parts at the pass's start)+k, after checking that
//     it holds exactly the bytes the meter counted for part k, and records each finished part with the hash state
//     at its end: the State advances by the contiguous run of finished parts, whatever stops the pass;
//   - CompleteMultipartUpload completes with every part of the State, earlier invocations' included, and the
//     whole object's size;
//   - PutObject (the remainder is under one part, or empty) becomes the upload's last UploadPart and the Complete;
//   - AbortMultipartUpload does nothing: the package aborts on every failure, a deadline or a dropped connection
//     included, and those are exactly the failures this path resumes from. Transfer aborts the upload itself when
//     the failure is permanent (see resumable), right after UploadObject returns.
//
// Nothing here depends on the package's buffering: a part whose size or number differs from what the meter saw
// fails the transfer permanently (and it is aborted) instead of storing a wrong object.
type resumer struct {
	transfermanager.S3APIClient // the real client, for the calls UploadObject does not make
	s3                          *s3.Client
	bucket                      string
	m                           *meter
	base                        int64 // State.Done at the pass's start
	offset                      int   // len(State.Parts) at the pass's start

	completer completeSlowly // Transferor.completer

	mu       sync.Mutex
	st       *State
	waiting  map[int64]finished // finished parts of this pass not yet contiguous with State.Parts
	complete bool
}

var _ transfermanager.S3APIClient = (*resumer)(nil)

// finished is one uploaded part, waiting to join the State.
type finished struct {
	part      Part
	end       int64  // offset after the part
	hashAfter []byte // SHA-256 state after the part
}

func newResumer(c *s3.Client, bucket string, st *State, m *meter, completer completeSlowly) *resumer {
	return &resumer{S3APIClient: c, s3: c, bucket: bucket, m: m, base: st.Done, offset: len(st.Parts), st: st, waiting: map[int64]finished{},
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

// UploadPart sends the package's part k (numbered from 1 in every pass) as the State's part offset+k.
func (r *resumer) UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	return r.uploadPart(ctx, in, int64(aws.ToInt32(in.PartNumber)), opts)
}

// sized is what the transfer package's part bodies (bytes.Reader) offer to check their length.
type sized interface{ Len() int }

func (r *resumer) uploadPart(ctx context.Context, in *s3.UploadPartInput, k int64, opts []func(*s3.Options)) (*s3.UploadPartOutput, error) {
	c, ok := r.m.cutAfter(k)
	var start int64
	if k > 1 {
		start = (k - 1) * r.st.PartSize
	}
	body, isSized := in.Body.(sized)
	if !ok || !isSized || int64(body.Len()) != c.end-start || c.end-start <= 0 {
		// The package's parts no longer line up with the meter's: better no object than a wrong one.
		return nil, fmt.Errorf("attachments: the transfer package's part %d of %s does not match the bytes read: %w", k, r.st.AttachmentID, ErrPermanent)
	}
	num, ok := partNumber(r.offset + int(min(k, maxParts+1)) - 1)
	if !ok {
		return nil, fmt.Errorf("attachments: part %d of %s exceeds S3's %d parts: %w", int64(r.offset)+k, r.st.AttachmentID, maxParts, ErrPermanent)
	}
	cp := *in // the package keeps its own part number (a shared pointer): never write through in
	cp.PartNumber = aws.Int32(num)
	cp.ContentLength = aws.Int64(c.end - start)
	cp.ChecksumAlgorithm = s3types.ChecksumAlgorithm(r.st.Checksum)
	out, err := r.s3.UploadPart(ctx, &cp, opts...)
	if err != nil {
		if isNoSuchUpload(err) {
			return nil, errNoSuchUpload
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("attachments: upload part %d of %s: %w: %w", num, r.st.AttachmentID, ErrRetryable, err)
	}
	r.record(k, finished{part: Part{Number: num, ETag: aws.ToString(out.ETag), CRC32: aws.ToString(out.ChecksumCRC32)},
		end: r.base + c.end, hashAfter: c.hash})
	return out, nil
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

// CompleteMultipartUpload completes the upload with every part of the State, not only this pass's.
func (r *resumer) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	var n int
	if in.MultipartUpload != nil {
		n = len(in.MultipartUpload.Parts)
	}
	r.mu.Lock()
	got := len(r.st.Parts) - r.offset
	r.mu.Unlock()
	if n != got {
		return nil, fmt.Errorf("attachments: the transfer package completes %d parts of %s, %d were recorded: %w", n, r.st.AttachmentID, got, ErrPermanent)
	}
	return r.completeUpload(ctx, opts)
}

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

// PutObject is the package's upload of a remainder under one part (or of nothing, when every part was uploaded
// before): it becomes the upload's last part and the Complete.
func (r *resumer) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	body, ok := in.Body.(sized)
	if !ok {
		return nil, fmt.Errorf("attachments: the transfer package's single upload of %s has no length: %w", r.st.AttachmentID, ErrPermanent)
	}
	if body.Len() > 0 {
		if _, err := r.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: in.Bucket, Key: in.Key,
			ContentType: in.ContentType, ServerSideEncryption: in.ServerSideEncryption, SSEKMSKeyId: in.SSEKMSKeyId,
			ChecksumAlgorithm: in.ChecksumAlgorithm}, opts...); err != nil {
			return nil, err
		}
		part := &s3.UploadPartInput{Bucket: in.Bucket, Key: in.Key, UploadId: aws.String(r.uploadID()), Body: in.Body,
			PartNumber: aws.Int32(1)}
		if _, err := r.uploadPart(ctx, part, 1, opts); err != nil {
			return nil, err
		}
	}
	out, err := r.completeUpload(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &s3.PutObjectOutput{ETag: out.ETag, VersionId: out.VersionId, ServerSideEncryption: out.ServerSideEncryption,
		SSEKMSKeyId: out.SSEKMSKeyId, BucketKeyEnabled: out.BucketKeyEnabled, ChecksumCRC32: out.ChecksumCRC32,
		ChecksumType: out.ChecksumType}, nil
}

// AbortMultipartUpload keeps the upload: see resumer.
func (r *resumer) AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return &s3.AbortMultipartUploadOutput{}, nil
}
