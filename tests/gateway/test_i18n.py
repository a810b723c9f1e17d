import pytest

from gateway.i18n import LOCALES, catalogue, t


def test_catalogues_have_the_same_keys_and_fields() -> None:
    en = catalogue("en")
    for loc in LOCALES:
        cat = catalogue(loc)
        assert set(cat) == set(en), f"{loc} differs from en"
        for key, text in cat.items():
            fields = {p.split("}")[0] for p in text.split("{")[1:]}
            assert fields == {p.split("}")[0] for p in en[key].split("{")[1:]}, key


def test_format_and_fallback() -> None:
    assert t("demo.title", "zh-CN", site="A区") == "物业网关演示：A区"
    assert t("no.such.key", "zh-CN") == "no.such.key"
    with pytest.raises(ValueError):
        catalogue("fr")
