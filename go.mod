module github.com/herd-sh/herd

go 1.26.0

require (
	github.com/kelseyhightower/envconfig v1.4.0
	golang.org/x/sys v0.49.0
	sigs.k8s.io/yaml v1.6.0
)

require go.yaml.in/yaml/v2 v2.4.2 // indirect
