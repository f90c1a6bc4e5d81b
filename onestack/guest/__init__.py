"""The onestack test guest image (``onestack image build-test``)."""
