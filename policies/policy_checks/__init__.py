"""Checks of our own used by the shipped policies (``type: custom``).

A policy names one with ``function: policy_checks.links:foreign_links``; the
module is imported only when its owner trusts it, and must be importable::

    PYTHONPATH=policies GUARDRAILS_TRUSTED_MODULES=policy_checks guardrails-engine \
        eval --policy policies/support-links.yaml policies/support-links.cases.yaml
"""
