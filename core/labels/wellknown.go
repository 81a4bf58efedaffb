package labels

// Label keys with a meaning to Arcade itself, set by agents and read by the
// dispatcher.
const (
	// ContainerRuntime is carried by an agent that can run jobs in
	// container images ("docker"); a job with an image only goes to an agent
	// that has it.
	ContainerRuntime = "container-runtime"
	// Git is carried by an agent that found the git client at start (its
	// version); a job that checks out a source only goes to an agent that
	// has it.
	Git = "git"
	// ContainerRuntimeVersion is the version of that engine, as it reports
	// it, sanitized into a label value ("20.10.24-dfsg1").
	ContainerRuntimeVersion = "container-runtime-version"
)
