// Package plugins holds Arcade's first-party plugins, one folder each, built
// with the PDK into plugins/NAME.wasm by `make plugins`:
//
//	go-lint      ci        gofmt and parse check of the workspace's Go files
//	junit        ci        JUnit XML reports → pass/fail summary with counts
//	http-deploy  cd        deploy and roll back through a configured HTTP endpoint
//	secret-scan  security  secrets in the workspace; pipeline audit against a policy
//	webhook      notify    JSON webhook (generic, Slack, DingTalk, Feishu) with templates
//	log-notify   notify    notifications written to the log
//	forge-status notify    commit statuses on GitHub, Gitea/Forgejo and GitLab
//	fs-store     storage   objects with metadata under a granted folder
//	s3-store     storage   objects in an S3-compatible bucket; presigned URLs, multipart uploads
//	semver       custom    next semantic version and changelog from commit messages
//
// Their tests (this folder) load each one under the real host.
package plugins
