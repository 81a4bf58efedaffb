package labels_test

import (
	"fmt"

	"github.com/go-arcade/arcade/core/labels"
)

func ExampleParse() {
	sel, err := labels.Parse("env in (staging,production), gpu, !spot, cpu-cores>8, region=us-west")
	if err != nil {
		fmt.Println(err)
		return
	}
	agent := map[string]string{
		"env":       "production",
		"gpu":       "a100",
		"cpu-cores": "32",
		"region":    "us-west",
	}
	fmt.Println(sel)
	fmt.Println(sel.Matches(agent))

	agent["spot"] = "true"
	fmt.Println(sel.Matches(agent))

	_, err = labels.Parse("gpu,cpu>x")
	fmt.Println(err)
	// Output:
	// region=us-west,env in (staging,production),gpu,!spot,cpu-cores>8
	// true
	// false
	// selector: term 2 "cpu>x": GT needs an integer, got "x"
}

func ExampleAnd() {
	pipeline, _ := labels.Parse("env=staging")
	job, _ := labels.Parse("env=production,gpu")
	sel := labels.And(pipeline, job)
	fmt.Println(sel)
	fmt.Println(sel.Matches(map[string]string{"env": "staging", "gpu": ""}))
	// Output:
	// env=staging,gpu,env in (production)
	// false
}
