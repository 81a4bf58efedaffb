package host

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
)

// config_env in a plugins.yaml entry names config keys whose values come
// from the server's environment when the plugin loads, so that credentials
// are never written in plugins.yaml:
//
//	config_env: {secret_access_key: ARCADE_S3_SECRET_ACCESS_KEY}
//
// The values reach the plugin through config_get only: they are not kept in
// the Spec, so nothing that describes or ships a plugin's config (logs,
// plugin info, the modules handed to agents) carries them.

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (s *Spec) validateConfigEnv() []error {
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(s.ConfigEnv)) {
		name := s.ConfigEnv[key]
		switch {
		case key == "":
			errs = append(errs, fmt.Errorf("config_env: empty key"))
		case !envName.MatchString(name):
			errs = append(errs, fmt.Errorf("config_env: %s: %q is not an environment variable name", key, name))
		}
		if _, ok := s.Config[key]; ok {
			errs = append(errs, fmt.Errorf("config_env: %s is also set in config", key))
		}
	}
	return errs
}

// pluginConfig is the config handed to the plugin: config, plus the
// config_env values read now.
func pluginConfig(spec *Spec) (map[string]string, error) {
	if len(spec.ConfigEnv) == 0 {
		return spec.Config, nil
	}
	out := maps.Clone(spec.Config)
	if out == nil {
		out = map[string]string{}
	}
	for _, key := range slices.Sorted(maps.Keys(spec.ConfigEnv)) {
		v, ok := os.LookupEnv(spec.ConfigEnv[key])
		if !ok {
			return nil, refused(spec.Name, ErrConfig, "config_env: %s: environment variable %s is not set", key, spec.ConfigEnv[key])
		}
		out[key] = v
	}
	return out, nil
}
