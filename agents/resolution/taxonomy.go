package resolution

import "github.com/agentetl/agentetl/internal/model"

// Category is one class of the error taxonomy. The names are part of the
// JSON vocabulary (PipelineError.category, Diagnosis.category, dead-letter
// rows, metrics labels) and must stay stable.
type Category string

// The taxonomy. See the package documentation for what falls in each class.
const (
	CategoryConnection     Category = "connection"
	CategoryTimeout        Category = "timeout"
	CategoryRateLimit      Category = "rate_limit"
	CategoryAuthentication Category = "authentication"
	CategoryPermission     Category = "permission"
	CategorySchema         Category = "schema"
	CategoryDataType       Category = "data_type"
	CategoryConstraint     Category = "constraint"
	CategoryConflict       Category = "conflict"
	CategoryPoison         Category = "poison"
	CategoryResource       Category = "resource"
	CategoryConfiguration  Category = "configuration"
	CategoryUnknown        Category = "unknown"
)

// Categories lists the taxonomy in documentation order.
func Categories() []Category {
	return []Category{
		CategoryConnection, CategoryTimeout, CategoryRateLimit, CategoryAuthentication, CategoryPermission,
		CategorySchema, CategoryDataType, CategoryConstraint, CategoryConflict, CategoryPoison,
		CategoryResource, CategoryConfiguration, CategoryUnknown,
	}
}

// ParseCategory returns the category named s and whether it exists.
func ParseCategory(s string) (Category, bool) {
	for _, c := range Categories() {
		if string(c) == s {
			return c, true
		}
	}
	return "", false
}

// Transient reports whether the same operation may succeed if it is simply
// tried again later: the connection dropped, a timeout or rate limit hit,
// or a concurrent transaction won a lock or serialization race.
func (c Category) Transient() bool {
	switch c {
	case CategoryConnection, CategoryTimeout, CategoryRateLimit, CategoryConflict:
		return true
	}
	return false
}

// RecordLevel reports whether the error is caused by the content of one
// record rather than by the destination as a whole, so that isolating and
// setting aside the offending records lets the rest through.
func (c Category) RecordLevel() bool {
	switch c {
	case CategoryDataType, CategoryConstraint, CategoryPoison:
		return true
	}
	return false
}

// DefaultStrategy is the strategy proposed for a category before rules and
// history are consulted.
func (c Category) DefaultStrategy() string {
	switch {
	case c.Transient():
		return model.StrategyRetry
	case c.RecordLevel():
		return model.StrategySkip
	case c == CategoryResource:
		return model.StrategyAdjustConfig
	default:
		return model.StrategyEscalate
	}
}

// Strategies lists the resolution strategies.
func Strategies() []string {
	return []string{model.StrategyRetry, model.StrategySkip, model.StrategyAdjustConfig, model.StrategyEscalate}
}

// ValidStrategy reports whether s names a strategy.
func ValidStrategy(s string) bool {
	for _, x := range Strategies() {
		if x == s {
			return true
		}
	}
	return false
}
