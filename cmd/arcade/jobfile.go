package main

import (
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobimage"
	"github.com/go-arcade/arcade/core/jobstep"
)

// jobFile is a job written as YAML (see examples/jobs).
type jobFile struct {
	Name     string            `yaml:"name"`
	Commands []string          `yaml:"commands"`
	Steps    []jobstep.YAML    `yaml:"steps"`
	Env      map[string]string `yaml:"env"`
	Selector string            `yaml:"selector"`
	Labels   map[string]string `yaml:"labels"`
	Timeout  string            `yaml:"timeout"`
	Retries  int32             `yaml:"retries"`
	Image    string            `yaml:"image"`
	// pull, registry_auth, cpus, memory, network, services
	Container jobimage.YAML `yaml:",inline"`
	Artifacts struct {
		Paths    []string `yaml:"paths"`
		ExpireIn string   `yaml:"expire_in"`
	} `yaml:"artifacts"`

	timeout, expireIn time.Duration
	steps             []*agentv1.Step
	container         *agentv1.ContainerOptions
}

func readJobFile(path string) (*jobFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read job file: %w", err)
	}
	var j jobFile
	dec := yaml.NewDecoder(bytesReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("job file %s: %w", path, err)
	}
	if j.Timeout != "" {
		if j.timeout, err = time.ParseDuration(j.Timeout); err != nil {
			return nil, fmt.Errorf("job file %s: timeout: %w", path, err)
		}
	}
	if j.steps, err = jobstep.FromYAML("steps", j.Steps); err != nil {
		return nil, fmt.Errorf("job file %s: %w", path, err)
	}
	if j.container, err = j.Container.Proto(""); err != nil {
		return nil, fmt.Errorf("job file %s: %w", path, err)
	}
	if j.Artifacts.ExpireIn != "" {
		if j.expireIn, err = time.ParseDuration(j.Artifacts.ExpireIn); err != nil {
			return nil, fmt.Errorf("job file %s: artifacts.expire_in: %w", path, err)
		}
	}
	return &j, nil
}

func (j *jobFile) request() *jobv1.CreateJobRequest {
	req := &jobv1.CreateJobRequest{
		Name: j.Name, Commands: j.Commands, Env: j.Env, Selector: j.Selector, Labels: j.Labels,
		Retries: j.Retries, Image: j.Image, Steps: j.steps, Container: j.container,
	}
	if j.timeout != 0 {
		req.Timeout = durationpb.New(j.timeout)
	}
	if len(j.Artifacts.Paths) > 0 {
		req.Artifacts = &agentv1.ArtifactConfig{Paths: j.Artifacts.Paths}
		if j.expireIn != 0 {
			req.Artifacts.ExpireIn = durationpb.New(j.expireIn)
		}
	}
	return req
}
