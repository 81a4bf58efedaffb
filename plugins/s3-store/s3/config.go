// Package s3 is the S3 client of the s3-store plugin: configuration,
// addressing, AWS Signature Version 4, the requests the plugin makes and
// the errors S3 answers, as typed values. It uses the standard library
// only and makes no request itself: the plugin hands it the host's HTTP
// function (and tests net/http's).
package s3

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-arcade/arcade/plugins/s3-store/sigv4"
)

// Config is the plugin's configuration.
type Config struct {
	// Endpoint is scheme://host[:port] of the S3 API, without a path.
	Endpoint *url.URL
	Region   string
	Bucket   string
	// Prefix is put before every key, as is (end it with "/" for a folder).
	Prefix string
	// Virtual addresses the bucket as a host name (bucket.host); otherwise
	// the bucket is the path's first segment.
	Virtual     bool
	Credentials sigv4.Credentials
}

// Config keys.
const (
	KeyEndpoint        = "endpoint"
	KeyRegion          = "region"
	KeyBucket          = "bucket"
	KeyPrefix          = "prefix"
	KeyAddressing      = "addressing"
	KeyAccessKeyID     = "access_key_id"
	KeySecretAccessKey = "secret_access_key"
	KeySessionToken    = "session_token"
)

// ConfigKeys are the keys the plugin reads.
var ConfigKeys = []string{KeyEndpoint, KeyRegion, KeyBucket, KeyPrefix, KeyAddressing, KeyAccessKeyID, KeySecretAccessKey, KeySessionToken}

// ParseConfig reads the configuration through get and checks it; an error
// names the key at fault (and never a credential's value).
func ParseConfig(get func(key string) (string, bool)) (Config, error) {
	val := func(k, def string) string {
		if v, ok := get(k); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	var c Config
	var errs []error
	ep := val(KeyEndpoint, "")
	if ep == "" {
		errs = append(errs, errors.New("config endpoint is required (e.g. https://s3.eu-west-1.amazonaws.com)"))
	} else if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		errs = append(errs, fmt.Errorf("config endpoint %q: want scheme://host[:port] (http or https, no path)", ep))
	} else {
		u.Path = ""
		c.Endpoint = u
	}
	c.Region = val(KeyRegion, "us-east-1")
	c.Bucket = val(KeyBucket, "")
	if err := checkBucket(c.Bucket); err != nil {
		errs = append(errs, err)
	}
	c.Prefix, _ = get(KeyPrefix)
	if strings.HasPrefix(c.Prefix, "/") {
		errs = append(errs, fmt.Errorf("config prefix %q must not start with /", c.Prefix))
	}
	switch a := val(KeyAddressing, "path"); a {
	case "path":
	case "virtual":
		c.Virtual = true
	default:
		errs = append(errs, fmt.Errorf("config addressing %q: want path or virtual", a))
	}
	c.Credentials = sigv4.Credentials{AccessKeyID: val(KeyAccessKeyID, ""), SecretAccessKey: val(KeySecretAccessKey, ""),
		SessionToken: val(KeySessionToken, "")}
	if c.Credentials.AccessKeyID == "" || c.Credentials.SecretAccessKey == "" {
		errs = append(errs, errors.New("config access_key_id and secret_access_key are required (as stored secrets: secrets: in plugins.yaml, never written there)"))
	}
	return c, errors.Join(errs...)
}

// checkBucket applies S3's bucket naming rules (3-63 characters: lower-case
// letters, digits, dots and hyphens, starting and ending with a letter or
// digit).
func checkBucket(b string) error {
	if b == "" {
		return errors.New("config bucket is required")
	}
	ok := len(b) >= 3 && len(b) <= 63
	for i := 0; ok && i < len(b); i++ {
		c := b[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || (c == '.' || c == '-') && i > 0 && i < len(b)-1
	}
	if !ok {
		return fmt.Errorf("config bucket %q is not a valid bucket name", b)
	}
	return nil
}

// ObjectURL returns the URL of key (the prefix is added here), with the
// path escaped as it is signed.
func (c *Config) ObjectURL(key string) *url.URL {
	u := *c.Endpoint
	path := "/" + sigv4.EscapePath(c.Prefix+key)
	if c.Virtual {
		u.Host = c.Bucket + "." + u.Host
	} else {
		path = "/" + c.Bucket + path
	}
	// Path and RawPath both: the request goes out with the escaping
	// signed.
	u.Path, _ = url.PathUnescape(path)
	u.RawPath = path
	return &u
}

// BucketURL returns the URL of the bucket itself (for listings).
func (c *Config) BucketURL() *url.URL {
	u := *c.Endpoint
	if c.Virtual {
		u.Host = c.Bucket + "." + u.Host
		u.Path = "/"
	} else {
		u.Path = "/" + c.Bucket
	}
	return &u
}

// Host is the host name the plugin must be granted.
func (c *Config) Host() string { return c.BucketURL().Hostname() }
