package samtemplate_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// statements returns a policy document's statements.

// TestLogGroupsDeclared: every function writes to a log group the template declares, kept LogRetentionDays and
// encrypted with the stack's key, whose name the key policy's CloudWatch Logs statement covers.
func TestLogGroupsDeclared(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	var logsStmt map[string]any
	for _, st := range statements(get(tmpl.Resources["DataKey"].Properties, "KeyPolicy")) {
		if st["Sid"] == "CloudWatchLogsForThisStack" {
			logsStmt = st
		}
	}
	if logsStmt == nil {
		t.Fatal("the key policy has no statement for CloudWatch Logs")
	}
	if got := get(logsStmt, "Principal", "Service"); !reflect.DeepEqual(got, map[string]any{"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}) {
		t.Errorf("logs statement principal = %v", got)
	}
	arnPattern, _ := get(logsStmt, "Condition", "ArnLike", "kms:EncryptionContext:aws:logs:arn", "Fn::Sub").(string)
	prefix := strings.TrimSuffix(arnPattern[strings.Index(arnPattern, ":log-group:")+len(":log-group:"):], "*")
	if prefix != "/aws/lambda/${AWS::StackName}/" {
		t.Errorf("logs statement limited to %q, want this stack's log groups", arnPattern)
	}
	for _, fn := range fns {
		ref, _ := get(tmpl.Resources[fn.LogicalID].Properties, "LoggingConfig", "LogGroup", "Ref").(string)
		lg, ok := tmpl.Resources[ref]
		if !ok || lg.Type != "AWS::Logs::LogGroup" {
			t.Errorf("%s: LoggingConfig.LogGroup = %q, want a declared AWS::Logs::LogGroup", fn.LogicalID, ref)
			continue
		}
		p := lg.Properties
		if got := get(p, "RetentionInDays"); !reflect.DeepEqual(got, map[string]any{"Ref": "LogRetentionDays"}) {
			t.Errorf("%s: RetentionInDays = %v, want Ref LogRetentionDays", ref, got)
		}
		if got := get(p, "KmsKeyId"); !reflect.DeepEqual(got, map[string]any{"Fn::GetAtt": []any{"DataKey", "Arn"}}) {
			t.Errorf("%s: KmsKeyId = %v, want the stack's key", ref, got)
		}
		if name, _ := get(p, "LogGroupName", "Fn::Sub").(string); !strings.HasPrefix(name, prefix) {
			t.Errorf("%s: LogGroupName %q is outside the key policy's %q", ref, name, prefix)
		}
	}
	for _, name := range []string{"LogRetentionDays", "RunHistoryDays", "RevokedGrantDays", "RetentionDays"} {
		if _, ok := tmpl.Parameters[name]; !ok {
			t.Errorf("parameter %s is missing", name)
		}
	}
	if got := get(tmpl.Resources["Table"].Properties, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"); got != true {
		t.Errorf("point-in-time recovery = %v (the README states its 35-day window)", got)
	}
}

// TestPurgeFunctionPrivilege: the purge function has no route (only its daily revoked-grant sweep) and may only
// list and delete: no reads of
// tokens (KMS), secrets or objects, no writes of objects.
func TestPurgeFunctionPrivilege(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	p := tmpl.Resources["PurgeFunction"].Properties
	if p == nil {
		t.Fatal("PurgeFunction is missing")
	}
	// Direct invoke only, but for the daily sweep of grants left revoked: exactly one ScheduleV2 event whose
	// input asks for that and nothing else (no route, no other target of erasure).
	events, _ := p["Events"].(map[string]any)
	for name, e := range events {
		if get(e, "Type") != "ScheduleV2" || get(e, "Properties", "Input") != `{"revokedGrants": true}` {
			t.Errorf("PurgeFunction event %s = %v, want only the ScheduleV2 sweep of revoked grants", name, e)
		}
	}
	if len(events) != 1 {
		t.Errorf("PurgeFunction has %d events, want the one revoked-grant sweep", len(events))
	}
	allowed := []string{"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:Scan",
		"dynamodb:BatchWriteItem", "dynamodb:TransactWriteItems", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads",
		"s3:DeleteObjectVersion", "s3:AbortMultipartUpload"}
	for _, pol := range p["Policies"].([]any) {
		for _, st := range statements(pol) {
			acts, ok := st["Action"].([]any)
			if !ok {
				acts = []any{st["Action"]}
			}
			for _, a := range acts {
				if !slices.Contains(allowed, a.(string)) {
					t.Errorf("PurgeFunction may %v, which erasure does not need", a)
				}
			}
		}
	}
}

// TestBucketRefusesPutsNotUnderTheStackKey pins the bucket policy's Deny statements on s3:PutObject and checks
// what they refuse with a model of IAM's documented condition semantics: the operators in one statement are
// ANDed; StringNotEqualsIfExists and StringEquals are false when the request lacks the key; Null "true" holds
// when the key is absent. moto ignores bucket-policy conditions (infra/localstack does not apply them), so this
// model and cfn-lint are the local proof; AWS applies the policy itself. A request that names no encryption gets
// the bucket's default (SSE-KMS under the same key: TestTemplatePromises pins it), and UploadPart never carries
// the headers, so neither may be refused.
func TestBucketRefusesPutsNotUnderTheStackKey(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	const keyARN = "arn:aws:kms:eu-west-1:111122223333:key/stack-key"
	var denies []map[string]any
	for _, st := range statements(get(tmpl.Resources["ExportBucketPolicy"].Properties, "PolicyDocument")) {
		if st["Effect"] == "Deny" && st["Action"] == "s3:PutObject" && st["Principal"] == "*" {
			denies = append(denies, st)
		}
	}
	if len(denies) == 0 {
		t.Fatal("bucket policy has no Deny s3:PutObject statement")
	}
	resolve := func(v any) string {
		if m, ok := v.(map[string]any); ok && reflect.DeepEqual(m, map[string]any{"Fn::GetAtt": []any{"DataKey", "Arn"}}) {
			return keyARN
		}
		s, _ := v.(string)
		return s
	}
	holds := func(op string, cond map[string]any, headers map[string]string) bool {
		for k, v := range cond {
			got, present := headers[k]
			switch op {
			case "StringNotEqualsIfExists":
				if !present || got == resolve(v) {
					return false
				}
			case "StringEquals":
				if !present || got != resolve(v) {
					return false
				}
			case "Null":
				if (resolve(v) == "true") == present {
					return false
				}
			default:
				t.Fatalf("condition operator %s is not modelled", op)
			}
		}
		return true
	}
	denied := func(headers map[string]string) bool {
		for _, st := range denies {
			conds, _ := st["Condition"].(map[string]any)
			if len(conds) == 0 {
				t.Fatalf("statement %v denies every put", st["Sid"])
			}
			all := true
			for op, c := range conds {
				m, _ := c.(map[string]any)
				all = all && holds(op, m, headers)
			}
			if all {
				return true
			}
		}
		return false
	}
	const alg, kid, ssec = "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id",
		"s3:x-amz-server-side-encryption-customer-algorithm"
	tests := []struct {
		name    string
		headers map[string]string
		deny    bool
	}{
		{"no encryption named (bucket default: the stack's key)", map[string]string{}, false},
		{"UploadPart of a multipart upload (no headers)", map[string]string{}, false},
		{"SSE-S3", map[string]string{alg: "AES256"}, true},
		{"SSE-KMS, AWS managed key", map[string]string{alg: "aws:kms"}, true},
		{"SSE-KMS, another key", map[string]string{alg: "aws:kms", kid: "arn:aws:kms:eu-west-1:111122223333:key/other"}, true},
		{"another key without the algorithm", map[string]string{kid: "arn:aws:kms:eu-west-1:111122223333:key/other"}, true},
		{"DSSE-KMS under the key", map[string]string{alg: "aws:kms:dsse", kid: keyARN}, true},
		{"SSE-C", map[string]string{ssec: "AES256"}, true},
		{"SSE-KMS under the stack's key", map[string]string{alg: "aws:kms", kid: keyARN}, false},
	}
	for _, tt := range tests {
		if got := denied(tt.headers); got != tt.deny {
			t.Errorf("%s: denied = %v, want %v", tt.name, got, tt.deny)
		}
	}
}
