package localstack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
	"jiraexport/infra/stacktest"
)

// These tests prove the emulators are real implementations reached through the real SDK clients: each asserts
// a behaviour a hand-written fake would typically get wrong.

func TestDynamoDBConditionalWriteConflict(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	ctx := context.Background()
	put := func() error {
		_, err := env.Clients.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(env.Table),
			Item: map[string]ddbtypes.AttributeValue{
				"pk": &ddbtypes.AttributeValueMemberS{Value: "X"},
				"sk": &ddbtypes.AttributeValueMemberS{Value: "Y"},
			},
			ConditionExpression: aws.String("attribute_not_exists(pk)"),
		})
		return err
	}
	if err := put(); err != nil {
		t.Fatalf("first conditional put: %v", err)
	}
	var ccf *ddbtypes.ConditionalCheckFailedException
	if err := put(); !errors.As(err, &ccf) {
		t.Fatalf("second conditional put = %v, want ConditionalCheckFailedException", err)
	}
}

func TestDynamoDBTableMatchesTemplate(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	ctx := context.Background()
	out, err := env.Clients.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(env.Table)})
	if err != nil {
		t.Fatal(err)
	}
	td := out.Table
	if got := len(td.GlobalSecondaryIndexes); got != 1 || aws.ToString(td.GlobalSecondaryIndexes[0].IndexName) != "due" {
		t.Errorf("GSIs = %+v, want the sparse index \"due\"", td.GlobalSecondaryIndexes)
	}
	keys := map[string]ddbtypes.KeyType{}
	for _, k := range td.KeySchema {
		keys[aws.ToString(k.AttributeName)] = k.KeyType
	}
	if keys["pk"] != ddbtypes.KeyTypeHash || keys["sk"] != ddbtypes.KeyTypeRange {
		t.Errorf("key schema = %v, want pk HASH, sk RANGE", keys)
	}
	ttl, err := env.Clients.DynamoDB.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(env.Table)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != "ttl" {
		t.Errorf("TTL = %s on %q, want ENABLED on \"ttl\"", d.TimeToLiveStatus, aws.ToString(d.AttributeName))
	}
}

func TestKMSDecryptRefusedForWrongEncryptionContext(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	ctx := context.Background()
	enc, err := env.Clients.KMS.Encrypt(ctx, &kms.EncryptInput{
		KeyId: aws.String(env.KeyARN), Plaintext: []byte("secret"),
		EncryptionContext: map[string]string{"connection": "a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ctx     map[string]string
		wantErr bool
	}{
		{"same context", map[string]string{"connection": "a"}, false},
		{"other connection", map[string]string{"connection": "b"}, true},
		{"no context", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec, err := env.Clients.KMS.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: tt.ctx})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Decrypt(context %v) error = %v, want error %v", tt.ctx, err, tt.wantErr)
			}
			if err == nil && string(dec.Plaintext) != "secret" {
				t.Fatalf("Decrypt = %q, want %q", dec.Plaintext, "secret")
			}
		})
	}
}

func TestS3ObjectStoredWithSSEKMS(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	ctx := context.Background()
	// No encryption header: the bucket's default encryption from template.yaml must apply.
	if _, err := env.Clients.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(env.Bucket), Key: aws.String("a/b.json"), Body: strings.NewReader("{}"),
	}); err != nil {
		t.Fatal(err)
	}
	head, err := env.Clients.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("a/b.json")})
	if err != nil {
		t.Fatal(err)
	}
	if head.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms {
		t.Errorf("ServerSideEncryption = %q, want aws:kms", head.ServerSideEncryption)
	}
	if got := aws.ToString(head.SSEKMSKeyId); !strings.Contains(got, env.Prov.Attr("DataKey", "KeyId")) {
		t.Errorf("SSEKMSKeyId = %q, want the template's DataKey", got)
	}
	lc, err := env.Clients.S3.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(env.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var expiry int32
	for _, r := range lc.Rules {
		if r.Expiration != nil && r.Expiration.Days != nil {
			expiry = *r.Expiration.Days
		}
	}
	if expiry != 30 {
		t.Errorf("lifecycle expiry = %d days, want RetentionDays default 30", expiry)
	}
}

func TestSecretReadBack(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t, stacktest.Options{SecretValues: map[string]string{"AtlassianClientSecret": "s3cr3t"}})
	out, err := env.Clients.SecretsManager.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(env.SecretARN)})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.SecretString); got != "s3cr3t" {
		t.Errorf("GetSecretValue = %q, want %q", got, "s3cr3t")
	}
}

// TestSQSQueuesFromTemplate: queues are created with the attributes the template declares (including a redrive
// policy naming another queue), SAM's generated queues exist, and functions, roles and schedules get names and
// ARNs that references resolve to.
func TestSQSQueuesFromTemplate(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	tmpl, err := samtemplate.Parse([]byte(`
Resources:
  Dead:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
  Work:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 120
      RedrivePolicy:
        deadLetterTargetArn:
          Fn::GetAtt: [Dead, Arn]
        maxReceiveCount: 3
  Role:
    Type: AWS::IAM::Role
  TickFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/tick
      FunctionName:
        Fn::Sub: ${AWS::StackName}-tick
      Events:
        Tick:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 minute)
            DeadLetterConfig:
              Type: SQS
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	prov, err := localstack.Provision(ctx, env.Clients, tmpl, localstack.ProvisionOptions{Prefix: "q" + strings.ToLower(env.Table[1:7])})
	if err != nil {
		t.Fatal(err)
	}
	out, err := env.Clients.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(prov.Ref("Work")), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Attributes["VisibilityTimeout"] != "120" || !strings.Contains(out.Attributes["RedrivePolicy"], prov.Attr("Dead", "Arn")) {
		t.Errorf("Work queue attributes = %v, want the template's VisibilityTimeout and RedrivePolicy", out.Attributes)
	}
	if prov.Ref("TickFunctionTickQueue") == "" {
		t.Errorf("SAM's generated dead-letter queue for the ScheduleV2 event was not created")
	}
	if got, want := prov.Attr("TickFunction", "Arn"), localstack.FunctionARN(prov.Ref("TickFunction")); got != want || !strings.HasSuffix(got, "-tick") {
		t.Errorf("TickFunction ARN = %q, want %q ending in its FunctionName", got, want)
	}
	if !strings.HasPrefix(prov.Attr("Role", "Arn"), "arn:aws:iam::123456789012:role/") {
		t.Errorf("Role ARN = %q", prov.Attr("Role", "Arn"))
	}
}

// S3 is reached over TLS, and a client keeps its connection from one call to the next, as with AWS (moto's own
// server closes every connection; front.go is why this holds).
func TestS3KeepsConnectionsOverTLS(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	var fresh, reused, plain atomic.Int64
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		if _, ok := ci.Conn.(*tls.Conn); !ok {
			plain.Add(1)
		}
		if ci.Reused {
			reused.Add(1)
		} else {
			fresh.Add(1)
		}
	}})
	for i := range 6 {
		if _, err := env.Clients.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(env.Bucket),
			Key: aws.String("keepalive/" + strconv.Itoa(i)), Body: strings.NewReader("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if plain.Load() != 0 || fresh.Load() > 1 || reused.Load() < 5 {
		t.Errorf("6 sequential calls: %d new connections, %d reused, %d without TLS; want at most 1 new, all TLS",
			fresh.Load(), reused.Load(), plain.Load())
	}
}

// TestS3StreamedMultipartRoundTrips: an upload from a stream of unknown length (how the export copies an attachment)
// goes through the TLS front as a multipart upload, its parts and its completion passed on to moto unchanged; the
// object read back is the bytes sent.
func TestS3StreamedMultipartRoundTrips(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	ctx := t.Context()
	body := make([]byte, 11<<20+12345) // three parts of 5 MiB, the last short
	for i := range body {
		body[i] = byte(i*7 + i>>13)
	}
	pr, pw := io.Pipe()
	go func() { _, err := pw.Write(body); pw.CloseWithError(err) }()
	tm := transfermanager.New(env.Clients.S3, func(o *transfermanager.Options) { o.PartSizeBytes = 5 << 20 })
	if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("streamed/object"),
		Body: pr}); err != nil {
		t.Fatal(err)
	}
	out, err := env.Clients.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("streamed/object")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	_ = out.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Errorf("read back %d bytes (sha256 %x), want the %d sent (sha256 %x)", len(got), sha256.Sum256(got), len(body), sha256.Sum256(body))
	}
}
