package secret

import (
	"errors"

	"github.com/xdg-go/scram"
)

// SCRAMClient is one SCRAM conversation (Begin, then Step until Done). It has
// the method set of sarama.SCRAMClient.
type SCRAMClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

// NewSCRAMSHA256 and NewSCRAMSHA512 return a client for one conversation.
func NewSCRAMSHA256() *SCRAMClient { return &SCRAMClient{hash: scram.SHA256} }

// NewSCRAMSHA512 returns a SCRAM-SHA-512 client.
func NewSCRAMSHA512() *SCRAMClient { return &SCRAMClient{hash: scram.SHA512} }

// Begin starts the conversation.
func (c *SCRAMClient) Begin(user, password, authzID string) error {
	cl, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = cl.NewConversation()
	return nil
}

// Step answers the server's challenge ("" for the first message).
func (c *SCRAMClient) Step(challenge string) (string, error) {
	if c.conv == nil {
		return "", errors.New("secret: scram: Step before Begin")
	}
	return c.conv.Step(challenge)
}

// Done reports whether the conversation is over.
func (c *SCRAMClient) Done() bool { return c.conv != nil && c.conv.Done() }
