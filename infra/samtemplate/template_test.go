package samtemplate_test

import (
	"fmt"
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
	if testing.Short() {
		t.Skip("-short: needs cfn-lint (Python; about 10 s); `make lint` and `make test` run it")
	}
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
		// GOMEMLIMIT is read by the Go runtime itself (the export's memory ceiling), not by shared/config.
		allowed := map[string]bool{"GOMEMLIMIT": true}
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
		usesDataKey := slices.Contains(required, "KMS_KEY_ID")
		policies, _ := tmpl.Resources[fn.LogicalID].Properties["Policies"].([]any)
		for _, p := range policies {
			for _, st := range statements(p) {
				// Secrets Manager decrypts the client secret with the data key on the caller's behalf: a function
				// that reads the secret needs that grant (and only through Secrets Manager) without holding the key.
				via := list(get(st, "Condition", "StringEquals", "kms:ViaService"))
				onlySecrets := len(via) == 1 && strings.HasPrefix(fmt.Sprint(via[0]), "map[Fn::Sub:secretsmanager.")
				for _, s := range actionsOf(st) {
					if strings.HasPrefix(s, "secretsmanager:") && !reads {
						t.Errorf("%s: %s granted to a function without the client secret", fn.LogicalID, s)
					}
					if strings.HasPrefix(s, "kms:") && !usesDataKey && (!reads || !onlySecrets) {
						t.Errorf("%s: %s granted to a function that uses no key", fn.LogicalID, s)
					}
				}
			}
		}
	}
}

// statements lists a policy document's statements, unwrapping Fn::If (both branches count: a conditional grant
// is still a grant) and dropping AWS::NoValue.
func statements(doc any) []map[string]any {
	raw, _ := get(doc, "Statement").([]any)
	var out []map[string]any
	var add func(v any)
	add = func(v any) {
		m, _ := v.(map[string]any)
		if m == nil || reflect.DeepEqual(m, map[string]any{"Ref": "AWS::NoValue"}) {
			return
		}
		if branches, ok := m["Fn::If"].([]any); ok && len(branches) == 3 {
			add(branches[1])
			add(branches[2])
			return
		}
		out = append(out, m)
	}
	for _, st := range raw {
		add(st)
	}
	return out
}

// list turns a policy field that may be one value or a list into a list.
func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

func actionsOf(st map[string]any) []string {
	var out []string
	for _, a := range list(st["Action"]) {
		s, _ := a.(string)
		out = append(out, s)
	}
	return out
}

// principals returns a statement's AWS principals as written (strings or intrinsic maps).
func principals(st map[string]any) []any {
	if p, ok := st["Principal"].(string); ok {
		return []any{p}
	}
	return list(get(st, "Principal", "AWS"))
}

// usesKey reports whether action is a cryptographic use of a KMS key (what a key administrator must not get).
func usesKey(action string) bool {
	switch {
	case action == "kms:*", action == "*":
		return true
	case strings.HasPrefix(action, "kms:Decrypt"), strings.HasPrefix(action, "kms:Encrypt"),
		strings.HasPrefix(action, "kms:GenerateDataKey"), strings.HasPrefix(action, "kms:ReEncrypt"),
		strings.HasPrefix(action, "kms:GenerateMac"), strings.HasPrefix(action, "kms:VerifyMac"),
		strings.HasPrefix(action, "kms:Sign"), strings.HasPrefix(action, "kms:Verify"),
		strings.HasPrefix(action, "kms:DeriveSharedSecret"), strings.HasPrefix(action, "kms:GenerateRandom"):
		return true
	}
	return false
}

// TestTokenKeyPolicy pins who can open OAuth token envelopes: TokenKey's policy does not delegate its use to
// IAM (an account admin's blanket kms:Decrypt reads nothing), lets only the roles that use tokens (and the
// optional break-glass role) decrypt, only for purpose=oauth-token, and never the public OAuth function.
func TestTokenKeyPolicy(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	key := tmpl.Resources["TokenKey"]
	if key.Type != "AWS::KMS::Key" {
		t.Fatalf("TokenKey is %q, want an AWS::KMS::Key", key.Type)
	}
	// Exactly the functions whose roles the key policy names get TOKEN_KEY_ID (config.Required holds the code to
	// it), and it is TokenKey's ARN: a function sealing tokens under another key would fail in AWS.
	named := map[string]bool{}
	for _, st := range statements(get(key.Properties, "KeyPolicy")) {
		for _, p := range principals(st) {
			named[fmt.Sprint(p)] = true
		}
	}
	envFns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range envFns {
		v, has := fn.Env["TOKEN_KEY_ID"]
		role := fmt.Sprint(map[string]any{"Fn::GetAtt": []any{fn.LogicalID + "Role", "Arn"}})
		if has && !reflect.DeepEqual(v, map[string]any{"Fn::GetAtt": []any{"TokenKey", "Arn"}}) {
			t.Errorf("%s TOKEN_KEY_ID = %v, want TokenKey's ARN", fn.LogicalID, v)
		}
		if has != named[role] {
			t.Errorf("%s: TOKEN_KEY_ID in its environment = %v, its role in TokenKey's policy = %v; want both or neither", fn.LogicalID, has, named[role])
		}
	}
	rootArn := map[string]any{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
	allowedDecrypt := map[string]bool{
		`map[Fn::GetAtt:[ConnectorsFunctionRole Arn]]`: true,
		`map[Fn::GetAtt:[ExportFunctionRole Arn]]`:     true,
		`map[Ref:BreakGlassRoleArn]`:                   true,
	}
	rootAdmin, decrypters := false, 0
	for _, st := range statements(get(key.Properties, "KeyPolicy")) {
		if st["Effect"] != "Allow" {
			continue
		}
		ps := principals(st)
		for _, p := range ps {
			if p == "*" {
				t.Errorf("statement %v allows any principal", st["Sid"])
			}
		}
		for _, a := range actionsOf(st) {
			if reflect.DeepEqual(ps, []any{rootArn}) {
				rootAdmin = true
				if usesKey(a) {
					t.Errorf("the account root (so any IAM policy) may %s with the token key", a)
				}
				continue
			}
			if !usesKey(a) {
				continue
			}
			if get(st, "Condition", "StringEquals", "kms:EncryptionContext:purpose") != "oauth-token" {
				t.Errorf("statement %v: %s without the purpose=oauth-token condition", st["Sid"], a)
			}
			if a == "kms:Decrypt" || a == "kms:*" || strings.HasPrefix(a, "kms:ReEncrypt") {
				for _, p := range ps {
					if !allowedDecrypt[fmt.Sprint(p)] {
						t.Errorf("statement %v lets %v decrypt token envelopes, want only the token users and break-glass", st["Sid"], p)
					}
					decrypters++
				}
			}
		}
	}
	if !rootAdmin {
		t.Error("the account root cannot administer the token key")
	}
	if decrypters == 0 {
		t.Error("no role may decrypt token envelopes")
	}
	// The data key refuses token envelopes outright, so tokens sealed under the wrong key fail in AWS.
	denied := map[string]bool{}
	for _, st := range statements(get(tmpl.Resources["DataKey"].Properties, "KeyPolicy")) {
		if st["Effect"] == "Deny" && get(st, "Condition", "StringEquals", "kms:EncryptionContext:purpose") == "oauth-token" &&
			reflect.DeepEqual(principals(st), []any{"*"}) {
			for _, a := range actionsOf(st) {
				denied[a] = true
			}
		}
	}
	if !denied["kms:Decrypt"] || !denied["kms:GenerateDataKey"] {
		t.Errorf("DataKey does not refuse purpose=oauth-token envelopes (denied: %v)", denied)
	}
	// No function grants itself the token key through its own policies (that would bypass this list, and make a
	// dependency cycle with the key policy naming its role).
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range fns {
		policies, _ := tmpl.Resources[fn.LogicalID].Properties["Policies"].([]any)
		for _, p := range policies {
			for _, st := range statements(p) {
				if strings.Contains(fmt.Sprint(st["Resource"]), "TokenKey") {
					t.Errorf("%s grants itself %v on TokenKey in its own policy; add its role to TokenKey's policy instead", fn.LogicalID, st["Action"])
				}
			}
		}
	}
}

// TestAccountKey pins the fingerprint key: an HMAC key only the OAuth function can use, so no one else can test
// a guessed account id against the stored fingerprints.
func TestAccountKey(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	key := tmpl.Resources["AccountKey"].Properties
	if key["KeySpec"] != "HMAC_256" || key["KeyUsage"] != "GENERATE_VERIFY_MAC" {
		t.Errorf("AccountKey = %v/%v, want HMAC_256 / GENERATE_VERIFY_MAC", key["KeySpec"], key["KeyUsage"])
	}
	for _, st := range statements(key["KeyPolicy"]) {
		for _, a := range actionsOf(st) {
			if !usesKey(a) {
				continue
			}
			if ps := principals(st); !reflect.DeepEqual(ps, []any{map[string]any{"Fn::GetAtt": []any{"OAuthFunctionRole", "Arn"}}}) || a != "kms:GenerateMac" {
				t.Errorf("AccountKey statement %v lets %v %s, want only OAuthFunctionRole to GenerateMac", st["Sid"], ps, a)
			}
		}
	}
	env := get(tmpl.Resources["OAuthFunction"].Properties, "Environment", "Variables", "ACCOUNT_KEY_ID")
	if !reflect.DeepEqual(env, map[string]any{"Fn::GetAtt": []any{"AccountKey", "Arn"}}) {
		t.Errorf("OAuthFunction ACCOUNT_KEY_ID = %v, want AccountKey's ARN", env)
	}
}

// TestOAuthFunctionTableAccess pins the public OAuth function's table access to the partitions it works on,
// by key only.
func TestOAuthFunctionTableAccess(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	policies, _ := tmpl.Resources["OAuthFunction"].Properties["Policies"].([]any)
	n := 0
	for _, p := range policies {
		for _, st := range statements(p) {
			var ddb []string
			for _, a := range actionsOf(st) {
				if strings.HasPrefix(a, "dynamodb:") {
					ddb = append(ddb, a)
				}
			}
			if len(ddb) == 0 {
				continue
			}
			n++
			for _, a := range ddb {
				switch a {
				case "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:TransactWriteItems":
				default:
					t.Errorf("OAuthFunction may %s, want item operations by key only", a)
				}
			}
			lk := get(st, "Condition", "ForAllValues:StringLike", "dynamodb:LeadingKeys")
			if want := []any{"CONN#*", "APIKEY#*", "STATE#*"}; !reflect.DeepEqual(lk, want) {
				t.Errorf("OAuthFunction dynamodb:LeadingKeys = %v, want %v", lk, want)
			}
			if get(st, "Condition", "Null", "dynamodb:LeadingKeys") != "false" {
				t.Errorf("OAuthFunction LeadingKeys condition lacks Null=false (ForAllValues holds for an empty set)")
			}
		}
	}
	if n == 0 {
		t.Error("OAuthFunction has no table statement")
	}
}

func number(v any) float64 {
	switch n := v.(type) {
	case uint64:
		return float64(n)
	case int64:
		return float64(n)
	case int:
		return float64(n)
	case float64:
		return n
	}
	return -1
}

// TestRouteThrottles: every OAuth route has its own throttle, far below the default that /v1 gets.
func TestRouteThrottles(t *testing.T) {
	t.Parallel()
	tmpl, _ := load(t)
	api := tmpl.Resources["HttpApi"].Properties
	defRate, defBurst := number(get(api, "DefaultRouteSettings", "ThrottlingRateLimit")), number(get(api, "DefaultRouteSettings", "ThrottlingBurstLimit"))
	if defRate <= 0 || defBurst <= 0 {
		t.Fatalf("default route throttle = %v/%v, want set", defRate, defBurst)
	}
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	routes := 0
	for _, fn := range fns {
		if fn.LogicalID != "OAuthFunction" {
			continue
		}
		for _, r := range fn.Routes {
			routes++
			rs := get(api, "RouteSettings", r.Method+" "+r.Path)
			rate, burst := number(get(rs, "ThrottlingRateLimit")), number(get(rs, "ThrottlingBurstLimit"))
			if rate <= 0 || burst <= 0 || rate*5 > defRate || burst*5 > defBurst {
				t.Errorf("%s %s throttle = %v/s burst %v, want set and at most a fifth of the default %v/s burst %v",
					r.Method, r.Path, rate, burst, defRate, defBurst)
			}
		}
	}
	if routes < 3 {
		t.Errorf("OAuthFunction has %d routes, want GET and POST /oauth/authorize and GET /oauth/callback", routes)
	}
}
