# Stand-in for GNU Mailman 2.1's Mailman/Message.py: the classes its queue entries
# pickle (old-style instances of email.message.Message subclasses).
import email.message


class Message(email.message.Message):
    pass


class UserNotification(Message):
    pass
