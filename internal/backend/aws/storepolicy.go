package aws

import (
	cfn "github.com/awslabs/goformation/v7/cloudformation"

	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/models"
)

// The model store's policy. Models are the team's: every server may list
// the store's prefix and read, write and delete models in it. Git bundles
// of unsaved work (models.BundlesPrefix, spinbook/bundles/USER/) are each
// user's own: a server may read and create bundles only under its user's
// part, never delete one (nor a version of one), never replace one (a put
// must carry If-None-Match: *, as models.PutBundle's does), and may not
// touch another user's at all.
//
// IAM has no "everything under P except under P/spinbook/bundles/" for
// objects (S3 has no condition key for an object's key, and a Deny beats
// any Allow), so the models are allowed with NotResource (every object but
// the bundles) and an explicit Deny of every object outside the store
// bounds that to the store's prefix. Another user's bundles are then
// allowed by no statement: denied. On aws the site's TaskBoundary bounds
// the task role to the store's prefix once more.

// objectActions are what models need of objects (HeadObject is
// s3:GetObject; a multipart upload's parts are s3:PutObject).
var objectActions = []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}

// storePolicyStatements are the statements of user's model store policy
// for the store at bucket and prefix ("" or ending in /), with arn making
// an S3 ARN of "bucket" or "bucket/key-pattern".
func storePolicyStatements(arn func(string) string, bucket, prefix, user string) []map[string]any {
	store := bucket + "/" + prefix
	bundles := store + models.BundlesPrefix
	return []map[string]any{
		{
			"Sid": "ListTheStore", "Effect": "Allow", "Action": []string{"s3:ListBucket"},
			"Resource":  arn(bucket),
			"Condition": map[string]any{"StringLike": map[string]any{"s3:prefix": []string{prefix + "*"}}},
		},
		{
			"Sid": "TeamModels", "Effect": "Allow", "Action": objectActions,
			"NotResource": []string{arn(bundles + "*")},
		},
		{
			"Sid": "OwnBundles", "Effect": "Allow",
			"Action":   []string{"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"},
			"Resource": arn(bundles + user + "/*"),
		},
		{
			"Sid": "NothingOutsideTheStore", "Effect": "Deny", "Action": objectActions,
			"NotResource": []string{arn(store + "*")},
		},
	}
}

// bundleDenyStatements forbid deleting or replacing any bundle: a put
// without If-None-Match (s3:ObjectCreationOperation is false for the
// parts of a multipart upload, which carry no such header; its completion
// must).
func bundleDenyStatements(arn func(string) string, bucket, prefix string) []map[string]any {
	bundles := arn(bucket + "/" + prefix + models.BundlesPrefix + "*")
	return []map[string]any{
		{
			"Sid": "NoBundleDeleted", "Effect": "Deny",
			"Action":   []string{"s3:DeleteObject", "s3:DeleteObjectVersion"},
			"Resource": bundles,
		},
		{
			"Sid": "NoBundleReplaced", "Effect": "Deny", "Action": []string{"s3:PutObject"},
			"Resource": bundles,
			"Condition": map[string]any{
				"Null": map[string]any{"s3:if-none-match": "true"},
				"Bool": map[string]any{"s3:ObjectCreationOperation": "true"},
			},
		},
	}
}

// StorePolicy is the IAM policy, in the aws partition, that user's
// server needs on the S3 model store at bucket and prefix: what each
// server's task role holds on aws, and what docs/models.md tells admins
// to give each user's keys on the other backends.
func StorePolicy(bucket, prefix, user string) map[string]any {
	arn := func(r string) string { return "arn:aws:s3:::" + r }
	return policy(append(storePolicyStatements(arn, bucket, prefix, user), bundleDenyStatements(arn, bucket, prefix)...)...)
}

// cfnS3ARN is an S3 ARN in the stack's partition.
func cfnS3ARN(r string) string { return cfn.Sub("arn:${AWS::Partition}:s3:::" + r) }

// modelStoreStatements are user's task role's statements on the AWS S3
// model store, if there is one.
func modelStoreStatements(cfg *config.Config, user string) []map[string]any {
	bucket, prefix, ok := modelStore(cfg)
	if !ok {
		return nil
	}
	return append(storePolicyStatements(cfnS3ARN, bucket, prefix, user), bundleDenyStatements(cfnS3ARN, bucket, prefix)...)
}

// modelStoreBoundary is the most any task role of the site may do on the
// model store: list its prefix, use its objects, and (as every task
// role's own policy says too) neither delete nor replace a bundle.
func modelStoreBoundary(cfg *config.Config) []map[string]any {
	bucket, prefix, ok := modelStore(cfg)
	if !ok {
		return nil
	}
	return append([]map[string]any{
		{
			"Sid": "ListTheStore", "Effect": "Allow", "Action": []string{"s3:ListBucket"},
			"Resource":  cfnS3ARN(bucket),
			"Condition": map[string]any{"StringLike": map[string]any{"s3:prefix": []string{prefix + "*"}}},
		},
		{"Sid": "TheStoresObjects", "Effect": "Allow", "Action": objectActions, "Resource": cfnS3ARN(bucket + "/" + prefix + "*")},
	}, bundleDenyStatements(cfnS3ARN, bucket, prefix)...)
}
