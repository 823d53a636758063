package samtemplate_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"jiraexport/infra/localstack"
	"jiraexport/infra/samtemplate"
	"jiraexport/shared/config"
)

func load(t *testing.T) (*samtemplate.Template, string) {
	t.Helper()
	root, err := localstack.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tmpl, root
}

// get walks a property path through maps (string keys) and lists (int indexes).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// TestTemplatePromises pins the infrastructure settings that carry privacy promises: each row fails if the
// setting is removed or weakened.
func TestTemplatePromises(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	bucket := tmpl.Resources["ExportBucket"].Properties
	table := tmpl.Resources["Table"].Properties
	key := tmpl.Resources["DataKey"].Properties
	policy := tmpl.Resources["ExportBucketPolicy"].Properties
	rules, _ := get(bucket, "LifecycleConfiguration", "Rules").([]any)
	var expire map[string]any
	for _, r := range rules {
		if m, _ := r.(map[string]any); m["ExpirationInDays"] != nil {
			expire = m
		}
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"bucket SSE-KMS", get(bucket, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "SSEAlgorithm"), "aws:kms"},
		{"bucket uses the CMK", get(bucket, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "KMSMasterKeyID"), map[string]any{"Fn::GetAtt": []any{"DataKey", "Arn"}}},
		{"bucket key", get(bucket, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "BucketKeyEnabled"), true},
		{"block public ACLs", get(bucket, "PublicAccessBlockConfiguration", "BlockPublicAcls"), true},
		{"block public policy", get(bucket, "PublicAccessBlockConfiguration", "BlockPublicPolicy"), true},
		{"ignore public ACLs", get(bucket, "PublicAccessBlockConfiguration", "IgnorePublicAcls"), true},
		{"restrict public buckets", get(bucket, "PublicAccessBlockConfiguration", "RestrictPublicBuckets"), true},
		{"exports expire after RetentionDays", get(expire, "ExpirationInDays"), map[string]any{"Ref": "RetentionDays"}},
		{"noncurrent versions expire", get(expire, "NoncurrentVersionExpiration", "NoncurrentDays"), uint64(1)},
		{"incomplete uploads aborted", get(expire, "AbortIncompleteMultipartUpload", "DaysAfterInitiation"), uint64(1)},
		{"TLS-only: deny effect", get(policy, "PolicyDocument", "Statement", 0, "Effect"), "Deny"},
		{"TLS-only: condition", get(policy, "PolicyDocument", "Statement", 0, "Condition", "Bool", "aws:SecureTransport"), "false"},
		{"table SSE with KMS", get(table, "SSESpecification", "SSEType"), "KMS"},
		{"table uses the CMK", get(table, "SSESpecification", "KMSMasterKeyId"), map[string]any{"Ref": "DataKey"}},
		{"table TTL attribute", get(table, "TimeToLiveSpecification", "AttributeName"), "ttl"},
		{"table TTL enabled", get(table, "TimeToLiveSpecification", "Enabled"), true},
		{"point-in-time recovery", get(table, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"), true},
		{"sparse due index", get(table, "GlobalSecondaryIndexes", 0, "IndexName"), "due"},
		{"key rotation", get(key, "EnableKeyRotation"), true},
		{"secret encrypted with the CMK", get(tmpl.Resources["AtlassianClientSecret"].Properties, "KmsKeyId"), map[string]any{"Ref": "DataKey"}},
		{"runtime", tmpl.Globals.Function["Runtime"], "provided.al2023"},
		{"arm64", get(tmpl.Globals.Function, "Architectures", 0), "arm64"},
		{"JSON logs", get(tmpl.Globals.Function, "LoggingConfig", "LogFormat"), "JSON"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

// TestFunctionsFollowTheLayout checks every function is built by the Makefile from functions/<name>, which
// must exist with a main.go.
func TestFunctionsFollowTheLayout(t *testing.T) {
	t.Parallel()
	tmpl, root := load(t)
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) == 0 {
		t.Fatal("template.yaml declares no functions")
	}
	for _, fn := range fns {
		if m := tmpl.Resources[fn.LogicalID].Metadata["BuildMethod"]; m != "makefile" {
			t.Errorf("%s BuildMethod = %v, want makefile", fn.LogicalID, m)
		}
		if _, err := os.Stat(filepath.Join(root, fn.Dir, "main.go")); err != nil {
			t.Errorf("%s: %v", fn.LogicalID, err)
		}
	}
}

func TestResolver(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	r := tmpl.NewResolver("eu-west-1", "111122223333", "stk", map[string]string{"RetentionDays": "7"})
	r.Resources["Bucket"] = samtemplate.Physical{Ref: "b1", Attrs: map[string]string{"Arn": "arn:aws:s3:::b1"}}
	tests := []struct {
		in   any
		want string
	}{
		{map[string]any{"Ref": "RetentionDays"}, "7"},
		{map[string]any{"Ref": "AtlassianAuthUrl"}, "https://auth.atlassian.com"},
		{map[string]any{"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/*"}, "arn:aws:s3:::b1/*"},
		{map[string]any{"Fn::Sub": "${Bucket.Arn}-${AWS::Region}"}, "arn:aws:s3:::b1-eu-west-1"},
		{map[string]any{"Fn::GetAtt": []any{"Bucket", "Arn"}}, "arn:aws:s3:::b1"},
		{map[string]any{"Fn::Join": []any{"-", []any{"a", map[string]any{"Ref": "AWS::StackName"}}}}, "a-stk"},
		{map[string]any{"Fn::Sub": []any{"${x}!", map[string]any{"x": map[string]any{"Ref": "Bucket"}}}}, "b1!"},
	}
	for _, tt := range tests {
		got, err := r.ResolveString(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ResolveString(%v) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := r.ResolveString(map[string]any{"Ref": "Nope"}); err == nil {
		t.Error("ResolveString(Ref Nope) succeeded, want ErrUnresolved")
	}
}

// TestCfnLint runs cfn-lint (with the SAM transform) on template.yaml.
func TestCfnLint(t *testing.T) {
	t.Parallel()
	_, root := load(t)
	argv := []string{"cfn-lint"}
	if _, err := exec.LookPath("cfn-lint"); err != nil {
		// pip --user may leave the script off PATH; the module works either way.
		if exec.Command("python3", "-c", "import cfnlint").Run() != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("cfn-lint is not installed")
			}
			t.Skip("cfn-lint is not installed (pip install cfn-lint)")
		}
		argv = []string{"python3", "-m", "cfnlint"}
	}
	out, err := exec.Command(argv[0], append(argv[1:], filepath.Join(root, "template.yaml"))...).CombinedOutput()
	if err != nil {
		t.Fatalf("cfn-lint template.yaml: %v\n%s", err, out)
	}
}

// TestKMSGrantsAreScoped pins least privilege on the data key: no function may use it without a condition, and
// the public OAuth function may never decrypt a token envelope (only Secrets Manager may decrypt for it).
func TestKMSGrantsAreScoped(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range fns {
		policies, _ := tmpl.Resources[fn.LogicalID].Properties["Policies"].([]any)
		for _, p := range policies {
			stmts, _ := get(p, "Statement").([]any)
			for _, st := range stmts {
				actions := get(st, "Action")
				list, ok := actions.([]any)
				if !ok {
					list = []any{actions}
				}
				for _, a := range list {
					action, _ := a.(string)
					if action != "kms:Decrypt" && action != "kms:GenerateDataKey" && action != "kms:*" {
						continue
					}
					cond := get(st, "Condition", "StringEquals")
					if cond == nil {
						t.Errorf("%s: %s on the data key without a condition", fn.LogicalID, action)
						continue
					}
					if fn.LogicalID == "OAuthFunction" && action == "kms:Decrypt" && get(cond, "kms:ViaService") == nil {
						t.Errorf("OAuthFunction: kms:Decrypt not restricted to Secrets Manager (it must never decrypt token envelopes)")
					}
				}
			}
		}
	}
}

// TestFunctionEnvironments holds template.yaml and shared/config together: each function gets exactly the
// variables its config.Load requires plus the optional ones it reads, so a function that never talks to
// Atlassian (the dispatcher) gets no client secret ARN, and none gets a grant on the secret it has no ARN for.
func TestFunctionEnvironments(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range fns {
		name := config.Function(strings.TrimPrefix(fn.Dir, "functions/"))
		required := config.Required(name)
		if required == nil {
			t.Errorf("%s: shared/config does not know function %q", fn.LogicalID, name)
			continue
		}
		allowed := map[string]bool{}
		for _, v := range append(required, config.Optional(name)...) {
			allowed[v] = true
		}
		for _, v := range required {
			if _, ok := fn.Env[v]; !ok {
				t.Errorf("%s: environment lacks %s, which config.Load(%q) requires", fn.LogicalID, v, name)
			}
		}
		for v := range fn.Env {
			if !allowed[v] {
				t.Errorf("%s: environment has %s, which the function does not read", fn.LogicalID, v)
			}
		}
		reads := slices.Contains(required, "ATLASSIAN_CLIENT_SECRET_ARN")
		policies, _ := tmpl.Resources[fn.LogicalID].Properties["Policies"].([]any)
		for _, p := range policies {
			stmts, _ := get(p, "Statement").([]any)
			for _, st := range stmts {
				actions := get(st, "Action")
				list, ok := actions.([]any)
				if !ok {
					list = []any{actions}
				}
				for _, a := range list {
					if s, _ := a.(string); strings.HasPrefix(s, "secretsmanager:") && !reads {
						t.Errorf("%s: %s granted to a function without the client secret", fn.LogicalID, s)
					}
					if s, _ := a.(string); strings.HasPrefix(s, "kms:") && !slices.Contains(required, "KMS_KEY_ID") {
						t.Errorf("%s: %s granted to a function that uses no key", fn.LogicalID, s)
					}
				}
			}
		}
	}
}
