package agent

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestNothingRunsAfterClean: work asked for after Clean does not start.
func TestNothingRunsAfterClean(t *testing.T) {
	g := newBackground()
	g.close()
	ran := false
	g.run(func(context.Context) { ran = true })
	g.wait()
	assert.False(t, ran)
}
