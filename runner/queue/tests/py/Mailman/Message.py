# Stand-in for GNU Mailman 2.1's Mailman/Message.py: the same module path and class
# names, enough for cPickle to rebuild the pickled instances (their state is restored
# from the pickle, not computed here).
import email.message


class Message(email.message.Message):
    pass


class UserNotification(Message):
    pass


class OwnerNotification(UserNotification):
    pass
