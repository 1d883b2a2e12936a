"""The ways in.

The ``e2e`` command line (:mod:`.cli`), the Streamlit dashboard (:mod:`.streamlit_app`), the
in-browser demo (:mod:`.browser_app`) and its builder (:mod:`.dashboard_build`).
"""
