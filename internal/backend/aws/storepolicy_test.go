package aws

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The model store's policy is checked by what it decides, not by its
// text: an evaluator of IAM's documented rules (below) runs each request
// of the table against alice's task role and the site's boundary, as
// rendered in the templates. (No independent evaluator fits here: moto's
// ignores S3's condition keys, and the complete one on npm is AGPL.)

// request is one S3 call as IAM sees it: the action, the resource's ARN
// and the request's condition keys.
type request struct {
	action, resource string
	keys             map[string]string
}

// decision is IAM's answer: an explicit deny, an allow, or no allow.
type decision string

const (
	allowed      decision = "allowed"
	explicitDeny decision = "explicit deny"
	implicitDeny decision = "implicit deny"
)

// evaluate decides r for an identity policy bounded by a permissions
// boundary, as IAM does within one account: a matching Deny in either
// wins; else the request is allowed only if both have a matching Allow.
func evaluate(t *testing.T, identity, boundary []map[string]any, r request) decision {
	t.Helper()
	if matches(t, identity, "Deny", r) || matches(t, boundary, "Deny", r) {
		return explicitDeny
	}
	if matches(t, identity, "Allow", r) && matches(t, boundary, "Allow", r) {
		return allowed
	}
	return implicitDeny
}

// matches tells whether a statement of effect in sts applies to r.
func matches(t *testing.T, sts []map[string]any, effect string, r request) bool {
	t.Helper()
	for _, st := range sts {
		if st["Effect"] != effect {
			continue
		}
		if !slices.ContainsFunc(resolved(t, st["Action"]), func(p string) bool { return glob(strings.ToLower(p), strings.ToLower(r.action)) }) {
			continue
		}
		if res, ok := st["Resource"]; ok && !slices.ContainsFunc(resolved(t, res), func(p string) bool { return glob(p, r.resource) }) {
			continue
		}
		if res, ok := st["NotResource"]; ok && slices.ContainsFunc(resolved(t, res), func(p string) bool { return glob(p, r.resource) }) {
			continue
		}
		if conditionsHold(t, st["Condition"], r.keys) {
			return true
		}
	}
	return false
}

// conditionsHold: every operator's every key holds (AND); a key holds if
// any of its values matches (OR), or for a negated operator if none does,
// and a key missing from the request matches only a negated operator.
func conditionsHold(t *testing.T, c any, keys map[string]string) bool {
	t.Helper()
	if c == nil {
		return true
	}
	for op, byKey := range c.(map[string]any) {
		for key, values := range byKey.(map[string]any) {
			got, present := keys[key]
			any := false
			for _, v := range resolved(t, values) {
				switch op {
				case "StringLike", "StringNotLike":
					any = any || present && glob(v, got)
				case "Bool":
					any = any || present && got == v
				case "Null":
					any = any || (v == "true") != present
				default:
					t.Fatalf("the evaluator does not know the condition operator %s", op)
				}
			}
			if strings.Contains(op, "Not") {
				any = !present || !any
			}
			if !any {
				return false
			}
		}
	}
	return true
}

// glob matches IAM's wildcards: * any run of characters, ? one.
func glob(pattern, s string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(s)
}

// resolved is a statement element as strings, with the stack's
// pseudo-parameters in an Fn::Sub replaced as in account 123456789012 in
// us-east-1.
func resolved(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, s := range list(v) {
		if strings.HasPrefix(s, "{") {
			t.Fatalf("the evaluator cannot resolve %s", s)
		}
		out = append(out, strings.NewReplacer("${AWS::Partition}", "aws", "${AWS::Region}", "us-east-1", "${AWS::AccountId}", "123456789012").Replace(s))
	}
	return out
}

// storeCases are what alice's server may do in the store
// s3://team-models/notebooks/: the team's models, all of it; her own
// bundles, read and create only; anyone else's, nothing.
func storeCases() []struct {
	name string
	r    request
	want decision
} {
	obj := func(key string) string { return "arn:aws:s3:::team-models/notebooks/" + key }
	own := obj("spinbook/bundles/alice/main-20261125T210000Z.bundle")
	bobs := obj("spinbook/bundles/bob/main-20261125T210000Z.bundle")
	create := map[string]string{"s3:if-none-match": "*", "s3:ObjectCreationOperation": "true"}
	replace := map[string]string{"s3:ObjectCreationOperation": "true"}
	part := map[string]string{"s3:ObjectCreationOperation": "false"}
	list := func(prefix string) map[string]string { return map[string]string{"s3:prefix": prefix} }
	return []struct {
		name string
		r    request
		want decision
	}{
		{"list the store", request{"s3:ListBucket", "arn:aws:s3:::team-models", list("notebooks/")}, allowed},
		{"list a model folder", request{"s3:ListBucket", "arn:aws:s3:::team-models", list("notebooks/churn/")}, allowed},
		{"list the bucket beyond the store", request{"s3:ListBucket", "arn:aws:s3:::team-models", list("other-team/")}, implicitDeny},
		{"list another bucket", request{"s3:ListBucket", "arn:aws:s3:::private", list("notebooks/")}, implicitDeny},

		{"read a model", request{"s3:GetObject", obj("churn/model-v3.pkl"), nil}, allowed},
		{"put a new model", request{"s3:PutObject", obj("churn/model-v4.pkl"), create}, allowed},
		{"replace a model (put --force)", request{"s3:PutObject", obj("churn/model-v3.pkl"), replace}, allowed},
		{"upload a model's part", request{"s3:PutObject", obj("churn/model-v4.pkl"), part}, allowed},
		{"delete a model", request{"s3:DeleteObject", obj("churn/model-v3.pkl"), nil}, allowed},
		{"abort a model's upload", request{"s3:AbortMultipartUpload", obj("churn/model-v4.pkl"), nil}, allowed},
		{"read beyond the store", request{"s3:GetObject", "arn:aws:s3:::team-models/other-team/x", nil}, explicitDeny},
		{"write beyond the store", request{"s3:PutObject", "arn:aws:s3:::team-models/other-team/x", create}, explicitDeny},
		{"read another bucket", request{"s3:GetObject", "arn:aws:s3:::private/notebooks/x", nil}, explicitDeny},
		{"change the bucket's versioning", request{"s3:PutBucketVersioning", "arn:aws:s3:::team-models", nil}, implicitDeny},

		{"read an own bundle", request{"s3:GetObject", own, nil}, allowed},
		{"create an own bundle", request{"s3:PutObject", own, create}, allowed},
		{"upload an own bundle's part", request{"s3:PutObject", own, part}, allowed},
		{"abort an own bundle's upload", request{"s3:AbortMultipartUpload", own, nil}, allowed},
		{"replace an own bundle", request{"s3:PutObject", own, replace}, explicitDeny},
		{"delete an own bundle", request{"s3:DeleteObject", own, nil}, explicitDeny},
		{"delete an own bundle's version", request{"s3:DeleteObjectVersion", own, nil}, explicitDeny},

		{"read bob's bundle", request{"s3:GetObject", bobs, nil}, implicitDeny},
		{"create in bob's bundles", request{"s3:PutObject", obj("spinbook/bundles/bob/evil.bundle"), create}, implicitDeny},
		{"upload a part into bob's bundles", request{"s3:PutObject", obj("spinbook/bundles/bob/evil.bundle"), part}, implicitDeny},
		{"replace bob's bundle", request{"s3:PutObject", bobs, replace}, explicitDeny},
		{"delete bob's bundle", request{"s3:DeleteObject", bobs, nil}, explicitDeny},
		{"abort bob's upload", request{"s3:AbortMultipartUpload", bobs, nil}, implicitDeny},
		{"read alice2's bundle", request{"s3:GetObject", obj("spinbook/bundles/alice2/main.bundle"), nil}, implicitDeny},
		{"read a bundle beside the users'", request{"s3:GetObject", obj("spinbook/bundles/main.bundle"), nil}, implicitDeny},
	}
}

// TestTaskRoleModelStore: alice's task role, within the site's boundary,
// may use the team's models but only her own bundles, and may delete or
// replace no bundle, whoever's.
func TestTaskRoleModelStore(t *testing.T) {
	all := rendered(t)
	site := parse(t, all["site-created-vpc"])
	inst := parse(t, all["instance-created-vpc"])
	boundary := statements(t, site.Resources["TaskBoundary"].Properties)
	var identity []map[string]any
	for _, p := range inst.Resources["TaskRole"].Properties["Policies"].([]any) {
		if p.(map[string]any)["PolicyName"] == "model-store" {
			identity = statements(t, map[string]any{"PolicyDocument": p.(map[string]any)["PolicyDocument"]})
		}
	}
	if identity == nil {
		t.Fatal("alice's task role has no model-store policy")
	}
	for _, c := range storeCases() {
		t.Run(c.name, func(t *testing.T) {
			if got := evaluate(t, identity, boundary, c.r); got != c.want {
				t.Errorf("%s on %s with %v: %s, want %s", c.r.action, c.r.resource, c.r.keys, got, c.want)
			}
		})
	}
}

// TestStorePolicy: the policy docs/models.md gives admins for the other
// backends decides the same as the task role, with no boundary to help.
func TestStorePolicy(t *testing.T) {
	identity := toJSONStatements(t, StorePolicy("team-models", "notebooks/", "alice"))
	everything := []map[string]any{{"Effect": "Allow", "Action": "*", "Resource": "*"}}
	for _, c := range storeCases() {
		t.Run(c.name, func(t *testing.T) {
			if got := evaluate(t, identity, everything, c.r); got != c.want {
				t.Errorf("%s on %s with %v: %s, want %s", c.r.action, c.r.resource, c.r.keys, got, c.want)
			}
		})
	}
}

// toJSONStatements is p's statements as encoding/json would decode them.
func toJSONStatements(t *testing.T, p map[string]any) []map[string]any {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return statements(t, map[string]any{"PolicyDocument": doc})
}

// TestStorePolicyDocs: docs/model-store.md and docs/aws.md show the
// policy spinbook makes, for alice and s3://team-models/notebooks/.
func TestStorePolicyDocs(t *testing.T) {
	want, err := json.Marshal(StorePolicy("team-models", "notebooks/", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	var wantDoc any
	if err := json.Unmarshal(want, &wantDoc); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"model-store.md", "aws.md"} {
		t.Run(page, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", page))
			if err != nil {
				t.Fatal(err)
			}
			blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(data), -1)
			for _, b := range blocks {
				var doc any
				if json.Unmarshal([]byte(b[1]), &doc) == nil && reflect.DeepEqual(doc, wantDoc) {
					return
				}
			}
			t.Errorf("docs/%s has no json block equal to the store policy spinbook makes:\n%s", page, want)
		})
	}
}
