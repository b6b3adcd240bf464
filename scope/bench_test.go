package scope

import "testing"

var (
	sinkScope Scope
	sinkBool  bool
)

func BenchmarkParse(b *testing.B) {
	// The first input is canonical; the second must be sorted.
	for _, in := range []string{"list,read:secrets/web/*", "write,read,list:k8s/+/deployments/web"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkScope = MustParse(in)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	s := MustParse("read,list:secrets/web/*")
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = s.Match("read", "secrets/web/tls")
	}
}

func BenchmarkContains(b *testing.B) {
	pairs := []struct{ name, outer, inner string }{
		{"typical", "read,list:secrets/web/*", "read:secrets/web/tls"},
		{"plus", "deploy,read:k8s/+/deployments/*", "deploy:k8s/prod/deployments/web"},
		{"length", "read:secrets/web/*", "read:secrets/we*"},
	}
	for _, p := range pairs {
		outer, inner := MustParse(p.outer), MustParse(p.inner)
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkBool = Contains(outer, inner)
			}
		})
	}
}
