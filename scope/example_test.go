package scope_test

import (
	"fmt"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

func ExampleParse() {
	s, err := scope.Parse("write,read,read:secrets/web/*")
	if err != nil {
		panic(err)
	}
	fmt.Println(s)
	fmt.Println(s.Actions(), s.Resource())
	fmt.Println(s.Match("read", "secrets/web/tls"), s.Match("read", "secrets/web"))

	_, err = scope.Parse("read:secrets//web")
	fmt.Println(err)
	// Output:
	// read,write:secrets/web/*
	// [read write] secrets/web/*
	// true false
	// scope "read:secrets//web": empty path segment at offset 13
}

func ExampleContains() {
	outer := scope.MustParse("read,list:secrets/web/*")
	fmt.Println(scope.Contains(outer, scope.MustParse("read:secrets/web/tls")))
	fmt.Println(scope.Contains(outer, scope.MustParse("read:secrets/web/+/*")))
	fmt.Println(scope.Contains(outer, scope.MustParse("write:secrets/web/tls")))
	fmt.Println(scope.Contains(outer, scope.MustParse("read:secrets/we*")))
	// Output:
	// true
	// true
	// false
	// false
}

func ExampleWitness() {
	outer := scope.MustParse("read:secrets/web/*")
	inner := scope.MustParse("read:secrets/we*")
	if action, resource, ok := scope.Witness(outer, inner); ok {
		fmt.Printf("%s allows %s on %s, %s does not\n", inner, action, resource, outer)
	}
	// Output:
	// read:secrets/we* allows read on secrets/we, read:secrets/web/* does not
}

func ExampleSet_Uncovered() {
	granted, err := scope.ParseSpaceSeparated("read,list:secrets/web/* deploy:k8s/+/deployments/web")
	if err != nil {
		panic(err)
	}
	requested, err := scope.ParseSet([]string{"read:secrets/web/tls", "deploy:k8s/prod/deployments/*"})
	if err != nil {
		panic(err)
	}
	if s, ok := granted.Uncovered(requested); ok {
		fmt.Println("not granted:", s)
	}
	fmt.Println(requested)
	// Output:
	// not granted: deploy:k8s/prod/deployments/*
	// read:secrets/web/tls deploy:k8s/prod/deployments/*
}
