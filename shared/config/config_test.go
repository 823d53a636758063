package config

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestFromEnv(t *testing.T) {
	full := map[string]string{
		"TABLE_NAME": "t", "KMS_KEY_ID": "k", "TOKEN_KEY_ID": "tk", "ATLASSIAN_CLIENT_ID": "c", "ATLASSIAN_CLIENT_SECRET_ARN": "arn",
		"ATLASSIAN_AUTH_URL": "", "ATLASSIAN_API_URL": "http://127.0.0.1:9/", "PUBLIC_BASE_URL": "https://x.example/",
	}
	tests := []struct {
		name    string
		unset   []string
		wantErr string
	}{
		{"complete", nil, ""},
		{"missing two", []string{"KMS_KEY_ID", "TABLE_NAME"}, "missing environment: KMS_KEY_ID, TABLE_NAME"},
		{"missing secret", []string{"ATLASSIAN_CLIENT_SECRET_ARN"}, "ATLASSIAN_CLIENT_SECRET_ARN"},
		{"missing token key", []string{"TOKEN_KEY_ID"}, "missing environment: TOKEN_KEY_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range full {
				t.Setenv(k, v)
			}
			for _, k := range tt.unset {
				t.Setenv(k, "")
			}
			c, err := FromEnv()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromEnv() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.AuthURL != "https://auth.atlassian.com" || c.APIURL != "http://127.0.0.1:9" || c.PublicBaseURL != "https://x.example" {
				t.Errorf("FromEnv() = %+v, want defaults applied and trailing slashes trimmed", c)
			}
			o := c.OAuth2("s")
			if o.Endpoint.AuthStyle != oauth2.AuthStyleInParams || o.Endpoint.TokenURL != "https://auth.atlassian.com/oauth/token" {
				t.Errorf("OAuth2() endpoint = %+v, want AuthStyleInParams and the token URL", o.Endpoint)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		authURL string
		want    oauth2.Endpoint
	}{
		{"https://auth.atlassian.com", oauth2.Endpoint{AuthURL: "https://auth.atlassian.com/authorize",
			TokenURL: "https://auth.atlassian.com/oauth/token", AuthStyle: oauth2.AuthStyleInParams}},
		{"http://127.0.0.1:9/", oauth2.Endpoint{AuthURL: "http://127.0.0.1:9/authorize",
			TokenURL: "http://127.0.0.1:9/oauth/token", AuthStyle: oauth2.AuthStyleInParams}},
	}
	for _, tt := range tests {
		if got := Endpoint(tt.authURL); got != tt.want {
			t.Errorf("Endpoint(%q) = %+v, want %+v", tt.authURL, got, tt.want)
		}
		if got := (&Config{AuthURL: tt.authURL}).OAuth2("s").Endpoint; got != tt.want {
			t.Errorf("OAuth2() with AuthURL %q: endpoint %+v, want %+v", tt.authURL, got, tt.want)
		}
	}
}

func TestLoadPerFunction(t *testing.T) {
	all := map[string]string{
		"TABLE_NAME": "t", "KMS_KEY_ID": "k", "TOKEN_KEY_ID": "tk", "ACCOUNT_KEY_ID": "ak", "ATLASSIAN_CLIENT_ID": "c",
		"ATLASSIAN_CLIENT_SECRET_ARN": "arn", "BUCKET_NAME": "b", "EXPORT_FUNCTION_NAME": "export", "REVOKED_GRANT_DAYS": "30",
	}
	tests := []struct {
		fn      Function
		unset   []string
		wantErr string
	}{
		{Dispatch, []string{"KMS_KEY_ID", "TOKEN_KEY_ID", "ATLASSIAN_CLIENT_ID", "ATLASSIAN_CLIENT_SECRET_ARN", "BUCKET_NAME"}, ""},
		{Dispatch, []string{"EXPORT_FUNCTION_NAME"}, "missing environment: EXPORT_FUNCTION_NAME"},
		{Connectors, []string{"KMS_KEY_ID", "ACCOUNT_KEY_ID"}, ""},
		{Connectors, []string{"EXPORT_FUNCTION_NAME", "TABLE_NAME"}, "missing environment: EXPORT_FUNCTION_NAME, TABLE_NAME"},
		{Connectors, []string{"BUCKET_NAME"}, "missing environment: BUCKET_NAME"},
		{Connectors, []string{"TOKEN_KEY_ID"}, "missing environment: TOKEN_KEY_ID"},
		{Export, []string{"EXPORT_FUNCTION_NAME", "ACCOUNT_KEY_ID"}, ""},
		{Export, []string{"BUCKET_NAME"}, "missing environment: BUCKET_NAME"},
		{Export, []string{"KMS_KEY_ID", "TOKEN_KEY_ID"}, "missing environment: KMS_KEY_ID, TOKEN_KEY_ID"},
		{OAuth, []string{"BUCKET_NAME", "EXPORT_FUNCTION_NAME", "KMS_KEY_ID"}, ""},
		{OAuth, []string{"ATLASSIAN_CLIENT_SECRET_ARN"}, "missing environment: ATLASSIAN_CLIENT_SECRET_ARN"},
		{OAuth, []string{"ACCOUNT_KEY_ID"}, "missing environment: ACCOUNT_KEY_ID"},
		{Purge, []string{"KMS_KEY_ID", "TOKEN_KEY_ID", "ATLASSIAN_CLIENT_ID", "ATLASSIAN_CLIENT_SECRET_ARN", "EXPORT_FUNCTION_NAME"}, ""},
		{Purge, []string{"REVOKED_GRANT_DAYS"}, "missing environment: REVOKED_GRANT_DAYS"},
		{Function("nope"), nil, "unknown function"},
	}
	for _, tt := range tests {
		t.Run(string(tt.fn)+strings.Join(tt.unset, ","), func(t *testing.T) {
			for k, v := range all {
				t.Setenv(k, v)
			}
			for _, k := range tt.unset {
				t.Setenv(k, "")
			}
			c, err := Load(tt.fn)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load(%s) error = %v, want %q", tt.fn, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%s) = %v", tt.fn, err)
			}
			if tt.fn == Dispatch && (c.ExportFunction != "export" || c.Table != "t") {
				t.Errorf("Load(dispatch) = %+v, want table and export function", c)
			}
			if tt.fn == Purge && (c.RevokedGrants != 30*24*time.Hour || c.Bucket != "b") {
				t.Errorf("Load(purge) = %+v, want 30 days of revoked grants and the bucket", c)
			}
		})
	}
}

func TestDispatchGuard(t *testing.T) {
	tests := []struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false}, // the store's default, connectors.DispatchGuard
		{"3", 3 * time.Second, false},
		{"0", 0, true},
		{"-5", 0, true},
		{"2s", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Setenv("TABLE_NAME", "t")
			t.Setenv("EXPORT_FUNCTION_NAME", "export")
			t.Setenv("DISPATCH_GUARD_SECONDS", tt.value)
			c, err := Load(Dispatch)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "DISPATCH_GUARD_SECONDS") {
					t.Fatalf("Load(dispatch) with DISPATCH_GUARD_SECONDS=%q error = %v, want one naming it", tt.value, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(dispatch) with DISPATCH_GUARD_SECONDS=%q: %v", tt.value, err)
			}
			if c.DispatchGuard != tt.want {
				t.Errorf("Load(dispatch) with DISPATCH_GUARD_SECONDS=%q: guard %v, want %v", tt.value, c.DispatchGuard, tt.want)
			}
		})
	}
}
