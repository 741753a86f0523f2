// Package kafka registers the kafka input and output, built on franz-go.
// The plugins only parse configuration and convert between Benthos messages
// and Kafka records; consuming, committing and error classification live in
// internal/kafkautil.
package kafka

import (
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/agentetl/agentetl/internal/kafkautil"
)

const (
	kFieldSeedBrokers  = "seed_brokers"
	kFieldClientID     = "client_id"
	kFieldTLS          = "tls"
	kFieldSASL         = "sasl"
	kFieldSASLMech     = "mechanism"
	kFieldSASLUser     = "user"
	kFieldSASLPassword = "password"
)

func seedBrokersField() *service.ConfigField {
	return service.NewStringListField(kFieldSeedBrokers).
		Description("Addresses (`host:port`) of brokers to bootstrap from; an entry may hold a comma-separated list.").
		Example([]string{"localhost:9092"}).
		Example([]string{"kafka-a:9092,kafka-b:9092"}).
		LintRule(`root = if this.length() == 0 { ["at least one seed broker is required"] }`)
}

func clientFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringField(kFieldClientID).Description("Client id sent to the brokers, visible in their logs and quotas.").
			Default("agentetl").Advanced(),
		service.NewTLSToggledField(kFieldTLS),
		service.NewObjectField(kFieldSASL,
			service.NewStringEnumField(kFieldSASLMech, kafkautil.SASLNone, kafkautil.SASLPlain, kafkautil.SASLScramSHA256, kafkautil.SASLScramSHA512).
				Description("SASL mechanism; `none` disables authentication.").Default(kafkautil.SASLNone),
			service.NewStringField(kFieldSASLUser).Description("SASL user name.").Default(""),
			service.NewStringField(kFieldSASLPassword).Description("SASL password.").Default("").Secret(),
		).Description("SASL authentication. A rejected login fails with the `authentication` error category and is not retried silently.").
			Advanced().
			LintRule(`root = if this.mechanism.or("none") != "none" && this.user.or("") == "" { ["sasl.user is required when a mechanism is set"] }`),
	}
}

func parseClient(conf *service.ParsedConfig) (kafkautil.ClientConfig, error) {
	var c kafkautil.ClientConfig
	var err error
	if c.SeedBrokers, err = conf.FieldStringList(kFieldSeedBrokers); err != nil {
		return c, err
	}
	if c.ClientID, err = conf.FieldString(kFieldClientID); err != nil {
		return c, err
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(kFieldTLS)
	if err != nil {
		return c, err
	}
	if tlsOn {
		c.TLS = tlsConf
	}
	sc := conf.Namespace(kFieldSASL)
	mech, err := sc.FieldString(kFieldSASLMech)
	if err != nil {
		return c, err
	}
	user, err := sc.FieldString(kFieldSASLUser)
	if err != nil {
		return c, err
	}
	pass, err := sc.FieldString(kFieldSASLPassword)
	if err != nil {
		return c, err
	}
	c.SASL, err = kafkautil.SASLMechanism(mech, user, pass)
	return c, err
}
