"""Tests of real peer and CLI processes talking over loopback."""
