package localstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/aws/smithy-go"

	"jiraexport/infra/samtemplate"
)

// Clients are the SDK clients provisioning uses, built once by the caller from one aws.Config.
type Clients struct {
	DynamoDB       *dynamodb.Client
	KMS            *kms.Client
	S3             *s3.Client
	SecretsManager *secretsmanager.Client
	SQS            *sqs.Client
}

// NewClients builds the clients from cfg; S3 uses path-style addressing, which a loopback endpoint needs.
func NewClients(cfg aws.Config) *Clients {
	return &Clients{
		DynamoDB:       dynamodb.NewFromConfig(cfg),
		KMS:            kms.NewFromConfig(cfg),
		S3:             s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
		SecretsManager: secretsmanager.NewFromConfig(cfg),
		SQS:            sqs.NewFromConfig(cfg),
	}
}

// ProvisionOptions select names and values for one copy of the template's resources.
type ProvisionOptions struct {
	// Prefix makes every physical name unique, so tests can each have their own copy (lower case, short).
	Prefix string
	// Params override parameter defaults.
	Params map[string]string
	// SecretValues gives the SecretString of a secret by logical id; others get a random value.
	SecretValues map[string]string
	// Physical supplies values for resources the local stack does not create (e.g. HttpApi).
	Physical map[string]samtemplate.Physical
}

// Provisioned maps the template's logical resources to what was created.
type Provisioned struct {
	Resolver *samtemplate.Resolver
}

// Ref returns the physical id (the Ref value) of a logical resource.
func (p *Provisioned) Ref(logicalID string) string { return p.Resolver.Resources[logicalID].Ref }

// Attr returns an attribute (Fn::GetAtt) of a logical resource.
func (p *Provisioned) Attr(logicalID, attr string) string {
	return p.Resolver.Resources[logicalID].Attrs[attr]
}

// Provision creates the template's keys, aliases, secrets, tables, buckets and bucket policies with the
// settings the template declares.
func Provision(ctx context.Context, c *Clients, t *samtemplate.Template, opts ProvisionOptions) (*Provisioned, error) {
	if opts.Prefix == "" {
		return nil, errors.New("provision: a prefix is required")
	}
	r := t.NewResolver(Region, AccountID, opts.Prefix, opts.Params)
	for id, p := range opts.Physical {
		r.Resources[id] = p
	}
	// Placeholders for resources that only exist in AWS, so that references to them still resolve.
	for id, res := range t.Resources {
		if _, ok := r.Resources[id]; ok {
			continue
		}
		switch res.Type {
		case "AWS::Serverless::HttpApi", "AWS::Serverless::Api":
			r.Resources[id] = samtemplate.Physical{Ref: "local-" + strings.ToLower(id)}
		case "AWS::IAM::Role":
			name := opts.Prefix + "-" + id
			r.Resources[id] = samtemplate.Physical{Ref: name, Attrs: map[string]string{
				"Arn": "arn:aws:iam::" + AccountID + ":role/" + name, "RoleId": name,
			}}
		case "AWS::Logs::LogGroup":
			name := "/local/" + opts.Prefix + "/" + id
			r.Resources[id] = samtemplate.Physical{Ref: name, Attrs: map[string]string{
				"Arn": "arn:aws:logs:" + Region + ":" + AccountID + ":log-group:" + name + ":*",
			}}
		case "AWS::Scheduler::Schedule":
			r.Resources[id] = samtemplate.Physical{Ref: id, Attrs: map[string]string{
				"Arn": "arn:aws:scheduler:" + Region + ":" + AccountID + ":schedule/default/" + id,
			}}
		}
	}
	// Functions are served by the local Lambda service (infra/lambdaservice) under the name the template gives
	// them, or their logical id; their ARNs resolve so that schedules, destinations and environment variables
	// can name them.
	for _, id := range append(t.ResourcesOfType("AWS::Serverless::Function"), t.ResourcesOfType("AWS::Lambda::Function")...) {
		if _, ok := r.Resources[id]; ok {
			continue
		}
		name := id
		if v, ok := t.Resources[id].Properties["FunctionName"]; ok {
			n, err := r.ResolveString(v)
			if err != nil {
				return nil, fmt.Errorf("provision %s: FunctionName: %w", id, err)
			}
			name = n
		}
		r.Resources[id] = samtemplate.Physical{Ref: name, Attrs: map[string]string{"Arn": FunctionARN(name)}}
	}
	steps := []struct {
		typ string
		fn  func(context.Context, *Clients, *samtemplate.Resolver, string, samtemplate.Resource, ProvisionOptions) error
	}{
		{"AWS::KMS::Key", createKey},
		{"AWS::KMS::Alias", createAlias},
		{"AWS::SecretsManager::Secret", createSecret},
		{"AWS::SQS::Queue", createQueue},
		{"AWS::DynamoDB::Table", createTable},
		{"AWS::S3::Bucket", createBucket},
		{"AWS::S3::BucketPolicy", createBucketPolicy},
	}
	for _, st := range steps {
		for _, id := range t.ResourcesOfType(st.typ) {
			if err := st.fn(ctx, c, r, id, t.Resources[id], opts); err != nil {
				return nil, fmt.Errorf("provision %s (%s): %w", id, st.typ, err)
			}
		}
	}
	for _, id := range ImplicitQueues(t) {
		if err := createQueue(ctx, c, r, id, samtemplate.Resource{Type: "AWS::SQS::Queue"}, opts); err != nil {
			return nil, fmt.Errorf("provision %s (SAM-generated queue): %w", id, err)
		}
	}
	return &Provisioned{Resolver: r}, nil
}

func resolveProps(r *samtemplate.Resolver, res samtemplate.Resource) (map[string]any, error) {
	v, err := r.Resolve(res.Properties)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func createKey(ctx context.Context, c *Clients, r *samtemplate.Resolver, id string, res samtemplate.Resource, _ ProvisionOptions) error {
	// Only the properties the emulator honours are resolved: a KeyPolicy names IAM roles (and conditions) that
	// exist only in AWS, and moto does not enforce key policies anyway.
	in := &kms.CreateKeyInput{}
	str := func(name string) (string, error) {
		v, ok := res.Properties[name]
		if !ok {
			return "", nil
		}
		return r.ResolveString(v)
	}
	desc, err := str("Description")
	if err != nil {
		return err
	}
	in.Description = aws.String(desc)
	spec, err := str("KeySpec")
	if err != nil {
		return err
	}
	if spec != "" {
		in.KeySpec = kmstypes.KeySpec(spec)
	}
	usage, err := str("KeyUsage")
	if err != nil {
		return err
	}
	if usage != "" {
		in.KeyUsage = kmstypes.KeyUsageType(usage)
	}
	out, err := c.KMS.CreateKey(ctx, in)
	if err != nil {
		return err
	}
	keyID := aws.ToString(out.KeyMetadata.KeyId)
	if rot, _ := res.Properties["EnableKeyRotation"].(bool); rot {
		if _, err := c.KMS.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(keyID)}); err != nil {
			return fmt.Errorf("enable rotation: %w", err)
		}
	}
	r.Resources[id] = samtemplate.Physical{Ref: keyID, Attrs: map[string]string{
		"Arn": aws.ToString(out.KeyMetadata.Arn), "KeyId": keyID,
	}}
	return nil
}

func createAlias(ctx context.Context, c *Clients, r *samtemplate.Resolver, id string, res samtemplate.Resource, _ ProvisionOptions) error {
	p, err := resolveProps(r, res)
	if err != nil {
		return err
	}
	name, _ := p["AliasName"].(string)
	target, _ := p["TargetKeyId"].(string)
	if _, err := c.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(target)}); err != nil {
		return err
	}
	r.Resources[id] = samtemplate.Physical{Ref: name}
	return nil
}

func createSecret(ctx context.Context, c *Clients, r *samtemplate.Resolver, id string, res samtemplate.Resource, opts ProvisionOptions) error {
	p, err := resolveProps(r, res)
	if err != nil {
		return err
	}
	value, ok := opts.SecretValues[id]
	if !ok {
		value = randomHex(32)
	}
	in := &secretsmanager.CreateSecretInput{
		Name:         aws.String(opts.Prefix + "/" + id),
		SecretString: aws.String(value),
	}
	if k, _ := p["KmsKeyId"].(string); k != "" {
		in.KmsKeyId = aws.String(k)
	}
	out, err := c.SecretsManager.CreateSecret(ctx, in)
	if err != nil {
		return err
	}
	r.Resources[id] = samtemplate.Physical{Ref: aws.ToString(out.ARN), Attrs: map[string]string{"Id": aws.ToString(out.ARN)}}
	return nil
}

// ImplicitQueues lists the logical ids of the SQS queues SAM generates for a function: a ScheduleV2 or
// Schedule event's DeadLetterConfig with Type SQS (QueueLogicalId, else <Function><Event>Queue), and an
// EventInvokeConfig destination of Type SQS without a Destination (<Function>EventInvokeConfig<OnSuccess|OnFailure>Queue).
func ImplicitQueues(t *samtemplate.Template) []string {
	var ids []string
	fns, err := t.Functions()
	if err != nil {
		return nil
	}
	for _, fn := range fns {
		events, _ := fn.Props["Events"].(map[string]any)
		for name, ev := range events {
			m, _ := ev.(map[string]any)
			props, _ := m["Properties"].(map[string]any)
			dl, _ := props["DeadLetterConfig"].(map[string]any)
			if dl == nil || dl["Type"] != "SQS" || dl["Arn"] != nil {
				continue
			}
			id, _ := dl["QueueLogicalId"].(string)
			if id == "" {
				id = fn.LogicalID + name + "Queue"
			}
			ids = append(ids, id)
		}
		cfg, _ := fn.Props["EventInvokeConfig"].(map[string]any)
		dc, _ := cfg["DestinationConfig"].(map[string]any)
		for _, key := range []string{"OnSuccess", "OnFailure"} {
			d, _ := dc[key].(map[string]any)
			if d != nil && d["Type"] == "SQS" && d["Destination"] == nil {
				ids = append(ids, fn.LogicalID+"EventInvokeConfig"+key+"Queue")
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// FunctionARN is the ARN of the local function named name.
func FunctionARN(name string) string {
	return "arn:aws:lambda:" + Region + ":" + AccountID + ":function:" + name
}

// createQueue creates an SQS queue (moto serves SQS on the same endpoint as S3 and KMS) with the attributes the
// template declares; a FIFO queue keeps its .fifo suffix.
func createQueue(ctx context.Context, c *Clients, r *samtemplate.Resolver, id string, res samtemplate.Resource, opts ProvisionOptions) error {
	p, err := resolveProps(r, res)
	if err != nil {
		return err
	}
	name := opts.Prefix + "-" + id
	attrs := map[string]string{}
	for k, v := range p {
		switch k {
		case "QueueName", "Tags":
			continue
		case "RedrivePolicy", "RedriveAllowPolicy":
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			attrs[k] = string(b)
		default:
			attrs[k] = fmt.Sprint(v)
		}
	}
	if attrs["FifoQueue"] == "true" {
		name += ".fifo"
	}
	out, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return err
	}
	url := aws.ToString(out.QueueUrl)
	r.Resources[id] = samtemplate.Physical{Ref: url, Attrs: map[string]string{
		"Arn": "arn:aws:sqs:" + Region + ":" + AccountID + ":" + name, "QueueName": name, "QueueUrl": url,
	}}
	return nil
}

func createTable(ctx context.Context, c *Clients, r *samtemplate.Resolver, id string, res samtemplate.Resource, opts ProvisionOptions) error {
	p, err := resolveProps(r, res)
	if err != nil {
		return err
	}
	name := opts.Prefix + "-" + id
	in := &dynamodb.CreateTableInput{TableName: aws.String(name), BillingMode: ddbtypes.BillingModePayPerRequest}
	if err := remarshal(p["AttributeDefinitions"], &in.AttributeDefinitions); err != nil {
		return err
	}
	if err := remarshal(p["KeySchema"], &in.KeySchema); err != nil {
		return err
	}
	if err := remarshal(p["GlobalSecondaryIndexes"], &in.GlobalSecondaryIndexes); err != nil {
		return err
	}
	if sse, ok := p["SSESpecification"].(map[string]any); ok {
		in.SSESpecification = &ddbtypes.SSESpecification{Enabled: aws.Bool(sse["SSEEnabled"] == true), SSEType: ddbtypes.SSETypeKms}
		if k, _ := sse["KMSMasterKeyId"].(string); k != "" {
			in.SSESpecification.KMSMasterKeyId = aws.String(k)
		}
	}
	// DeletionProtectionEnabled is left off locally: each test's copy of the table is thrown away after it.
	out, err := c.DynamoDB.CreateTable(ctx, in)
	if err != nil {
		return err
	}
	if ttl, ok := p["TimeToLiveSpecification"].(map[string]any); ok && ttl["Enabled"] == true {
		attr, _ := ttl["AttributeName"].(string)
		if _, err := c.DynamoDB.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               aws.String(name),
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(attr), Enabled: aws.Bool(true)},
		}); err != nil {
			return fmt.Errorf("ttl: %w", err)
		}
	}
	if pitr, ok := p["PointInTimeRecoverySpecification"].(map[string]any); ok && pitr["PointInTimeRecoveryEnabled"] == true {
		if _, err := c.DynamoDB.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
			TableName: aws.String(name),
			PointInTimeRecoverySpecification: &ddbtypes.PointInTimeRecoverySpecification{
				PointInTimeRecoveryEnabled: aws.Bool(true),
			},
		}, func(o *dynamodb.Options) {
			// DynamoDB Local refuses the call (400, no X-Amz-Crc32); the SDK's response CRC32 check then logged
			// "response did not match expected checksum" into the output of every test that provisions a stack.
			o.DisableValidateResponseChecksum = true
		}); err != nil && !isUnknownOperation(err) {
			// DynamoDB Local has no backups; the setting is checked by cfn-lint and applied in AWS only.
			return fmt.Errorf("point-in-time recovery: %w", err)
		}
	}
	r.Resources[id] = samtemplate.Physical{Ref: name, Attrs: map[string]string{"Arn": aws.ToString(out.TableDescription.TableArn)}}
	return nil
}

func createBucket(ctx context.Context, c *Clients, r *samtemplate.Resolver, id string, res samtemplate.Resource, opts ProvisionOptions) error {
	p, err := resolveProps(r, res)
	if err != nil {
		return err
	}
	name := strings.ToLower(opts.Prefix + "-" + id)
	if _, err := c.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return err
	}
	b := aws.String(name)
	if v, ok := p["VersioningConfiguration"].(map[string]any); ok && v["Status"] == "Enabled" {
		if _, err := c.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
			return fmt.Errorf("versioning: %w", err)
		}
	}
	if enc, ok := p["BucketEncryption"].(map[string]any); ok {
		var rules []s3types.ServerSideEncryptionRule
		list, _ := enc["ServerSideEncryptionConfiguration"].([]any)
		for _, it := range list {
			m, _ := it.(map[string]any)
			def, _ := m["ServerSideEncryptionByDefault"].(map[string]any)
			rule := s3types.ServerSideEncryptionRule{ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{
				SSEAlgorithm: s3types.ServerSideEncryption(fmt.Sprint(def["SSEAlgorithm"])),
			}}
			if k, _ := def["KMSMasterKeyID"].(string); k != "" {
				rule.ApplyServerSideEncryptionByDefault.KMSMasterKeyID = aws.String(k)
			}
			if bk, ok := m["BucketKeyEnabled"].(bool); ok {
				rule.BucketKeyEnabled = aws.Bool(bk)
			}
			rules = append(rules, rule)
		}
		if _, err := c.S3.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: b,
			ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{Rules: rules}}); err != nil {
			return fmt.Errorf("encryption: %w", err)
		}
	}
	if pab, ok := p["PublicAccessBlockConfiguration"].(map[string]any); ok {
		if _, err := c.S3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: b,
			PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
				BlockPublicAcls:       aws.Bool(pab["BlockPublicAcls"] == true),
				BlockPublicPolicy:     aws.Bool(pab["BlockPublicPolicy"] == true),
				IgnorePublicAcls:      aws.Bool(pab["IgnorePublicAcls"] == true),
				RestrictPublicBuckets: aws.Bool(pab["RestrictPublicBuckets"] == true),
			}}); err != nil {
			return fmt.Errorf("public access block: %w", err)
		}
	}
	if lc, ok := p["LifecycleConfiguration"].(map[string]any); ok {
		rules, err := lifecycleRules(lc)
		if err != nil {
			return err
		}
		if _, err := c.S3.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: b,
			LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{Rules: rules}}); err != nil {
			return fmt.Errorf("lifecycle: %w", err)
		}
	}
	r.Resources[id] = samtemplate.Physical{Ref: name, Attrs: map[string]string{"Arn": "arn:aws:s3:::" + name}}
	return nil
}

// lifecycleRules maps CloudFormation's LifecycleConfiguration rules to the S3 API's.
func lifecycleRules(lc map[string]any) ([]s3types.LifecycleRule, error) {
	list, _ := lc["Rules"].([]any)
	var out []s3types.LifecycleRule
	for _, it := range list {
		m, _ := it.(map[string]any)
		rule := s3types.LifecycleRule{
			ID:     aws.String(fmt.Sprint(m["Id"])),
			Status: s3types.ExpirationStatus(fmt.Sprint(m["Status"])),
			Filter: &s3types.LifecycleRuleFilter{Prefix: aws.String(stringOr(m["Prefix"], ""))},
		}
		if v, ok := m["ExpirationInDays"]; ok {
			n, err := toInt32(v)
			if err != nil {
				return nil, fmt.Errorf("lifecycle ExpirationInDays: %w", err)
			}
			rule.Expiration = &s3types.LifecycleExpiration{Days: aws.Int32(n)}
		}
		if v, ok := m["ExpiredObjectDeleteMarker"].(bool); ok {
			rule.Expiration = &s3types.LifecycleExpiration{ExpiredObjectDeleteMarker: aws.Bool(v)}
		}
		if nv, ok := m["NoncurrentVersionExpiration"].(map[string]any); ok {
			n, err := toInt32(nv["NoncurrentDays"])
			if err != nil {
				return nil, fmt.Errorf("lifecycle NoncurrentDays: %w", err)
			}
			rule.NoncurrentVersionExpiration = &s3types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(n)}
		}
		if ab, ok := m["AbortIncompleteMultipartUpload"].(map[string]any); ok {
			n, err := toInt32(ab["DaysAfterInitiation"])
			if err != nil {
				return nil, fmt.Errorf("lifecycle DaysAfterInitiation: %w", err)
			}
			rule.AbortIncompleteMultipartUpload = &s3types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(n)}
		}
		out = append(out, rule)
	}
	return out, nil
}

func createBucketPolicy(ctx context.Context, c *Clients, r *samtemplate.Resolver, _ string, res samtemplate.Resource, _ ProvisionOptions) error {
	p, err := resolveProps(r, res)
	if err != nil {
		return err
	}
	bucket, _ := p["Bucket"].(string)
	// moto enforces bucket policies but ignores their conditions, so a conditional Deny (such as the TLS-only
	// statement) would deny every request. Such policies are checked by cfn-lint and by the template tests
	// instead, and applied in AWS only.
	if hasCondition(p["PolicyDocument"]) {
		return nil
	}
	doc, err := json.Marshal(p["PolicyDocument"])
	if err != nil {
		return err
	}
	_, err = c.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(string(doc))})
	return err
}

func hasCondition(doc any) bool {
	m, _ := doc.(map[string]any)
	stmts, _ := m["Statement"].([]any)
	for _, st := range stmts {
		if sm, _ := st.(map[string]any); sm["Condition"] != nil {
			return true
		}
	}
	return false
}

// remarshal converts CloudFormation property maps to SDK types; their field names coincide.
func remarshal(in any, out any) error {
	if in == nil {
		return nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func isUnknownOperation(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "UnknownOperationException"
}

func toInt32(v any) (int32, error) {
	n, err := strconv.Atoi(fmt.Sprint(v))
	return int32(n), err
}

func stringOr(v any, def string) string {
	if s, ok := v.(string); ok {
		return s
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ResolveEnv resolves environment variables as template.yaml declares them (intrinsics included) against what
// was provisioned.
func (p *Provisioned) ResolveEnv(vars map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		s, err := p.Resolver.ResolveString(v)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}

// GlobalEnv is every variable any function of the template gets (Globals and each function's own: table, key,
// bucket, secret, Atlassian endpoints, function names), resolved against what was provisioned: what the env
// files give to scripts and the CLI. Each function itself gets only its own (samtemplate.Function.Env).
func (p *Provisioned) GlobalEnv(t *samtemplate.Template) (map[string]string, error) {
	fns, err := t.Functions()
	if err != nil {
		return nil, err
	}
	vars := map[string]any{}
	env, _ := t.Globals.Function["Environment"].(map[string]any)
	globals, _ := env["Variables"].(map[string]any)
	for k, v := range globals {
		vars[k] = v
	}
	for _, fn := range fns {
		for k, v := range fn.Env {
			vars[k] = v
		}
	}
	return p.ResolveEnv(vars)
}
