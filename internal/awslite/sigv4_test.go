package awslite

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestSignGetVanilla: the get-vanilla case of AWS's SigV4 test suite.
func TestSignGetVanilla(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://example.amazonaws.com/", nil)
	Sign(req, Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
		"us-east-1", "service", EmptySHA256, time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	// The suite signs host and x-amz-date only; S3 wants the payload's hash
	// signed too, which this signer always sends.
	got := req.Header.Get("Authorization")
	if !strings.HasPrefix(got, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=") {
		t.Fatalf("Authorization = %q", got)
	}
	req.Header.Del("X-Amz-Content-Sha256")
	req.Header.Del("Authorization")
	oracle := v4.NewSigner()
	if err := oracle.SignHTTP(t.Context(), aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
		req, EmptySHA256, "service", "us-east-1", time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"; req.Header.Get("Authorization") != want {
		t.Fatalf("the oracle disagrees with AWS's suite: %q", req.Header.Get("Authorization"))
	}
}

// TestSignMatchesSDK: for the requests the agent sends, the signature is
// the AWS SDK's, byte for byte (the SDK is the oracle; versitygw checks
// the same signatures for real in package models' tests).
func TestSignMatchesSDK(t *testing.T) {
	at := time.Date(2026, 12, 6, 4, 30, 0, 0, time.UTC)
	tests := []struct {
		name, method, url, service, payload string
		headers                             map[string]string
		creds                               Credentials
	}{
		{"head object", "HEAD", "http://127.0.0.1:7070/models/team/m.pkl", "s3", EmptySHA256, nil,
			Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}},
		{"put with a condition and metadata", "PUT", "https://bucket.s3.eu-west-1.amazonaws.com/team/churn/model-v3.pkl", "s3",
			"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			map[string]string{"If-None-Match": "*", "X-Amz-Meta-Sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "Content-Type": "application/octet-stream"},
			Credentials{AccessKeyID: "ASIA", SecretAccessKey: "secret/with+chars", SessionToken: "token=="}},
		{"key with spaces and unicode", "GET", "http://127.0.0.1:7070/models/a%20b/c%20%281%29.bin", "s3", EmptySHA256, nil,
			Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}},
		{"list with a query", "GET", "http://127.0.0.1:7070/models?list-type=2&prefix=team%2F&continuation-token=a%2Bb%3D", "s3", EmptySHA256, nil,
			Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}},
		{"cloudformation query", "POST", "https://cloudformation.us-east-1.amazonaws.com/", "cloudformation",
			hexSHA256([]byte("Action=DeleteStack&StackName=spinbook-team-alice&Version=2010-05-15")),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
			Credentials{AccessKeyID: "ASIA", SecretAccessKey: "secret", SessionToken: "tok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mine, _ := http.NewRequest(tt.method, tt.url, nil)
			theirs, _ := http.NewRequest(tt.method, tt.url, nil)
			for k, v := range tt.headers {
				mine.Header.Set(k, v)
				theirs.Header.Set(k, v)
			}
			Sign(mine, tt.creds, "eu-west-1", tt.service, tt.payload, at)
			theirs.Header.Set("X-Amz-Content-Sha256", tt.payload)
			oracle := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = tt.service == "s3" })
			err := oracle.SignHTTP(t.Context(), aws.Credentials{AccessKeyID: tt.creds.AccessKeyID, SecretAccessKey: tt.creds.SecretAccessKey, SessionToken: tt.creds.SessionToken},
				theirs, tt.payload, tt.service, "eu-west-1", at)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
				if mine.Header.Get(h) != theirs.Header.Get(h) {
					t.Errorf("%s:\n mine %q\n SDK  %q", h, mine.Header.Get(h), theirs.Header.Get(h))
				}
			}
		})
	}
}
