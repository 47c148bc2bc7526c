//! A small Well-Known Text reader for query geometries.
//!
//! Accepts `POINT`, `MULTIPOINT`, `LINESTRING`, `MULTILINESTRING`, `POLYGON`, `MULTIPOLYGON` and
//! `GEOMETRYCOLLECTION`, case-insensitively, with optional `Z`/`M`/`ZM` tags (extra ordinates are
//! read and dropped) and `EMPTY`. Coordinates are `x y` = `lon lat`. No new dependency: the
//! grammar is tiny and the error messages can say where the text went wrong.

use geo_types::{
    Coord, Geometry, GeometryCollection, LineString, MultiLineString, MultiPoint, MultiPolygon,
    Point, Polygon,
};

/// Parse WKT into a geometry; the error says what was expected and where.
pub fn parse_wkt(text: &str) -> Result<Geometry<f64>, String> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, pos: 0 };
    let g = p.geometry()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {} after the geometry", t.describe()));
    }
    Ok(g)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Number(f64),
    Open,
    Close,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("word {w:?}"),
            Token::Number(n) => format!("number {n}"),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_alphabetic() {
                    i += 1;
                }
                out.push(Token::Word(
                    chars[start..i]
                        .iter()
                        .collect::<String>()
                        .to_ascii_uppercase(),
                ));
            }
            c if c.is_ascii_digit() || matches!(c, '-' | '+' | '.') => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || matches!(chars[i], '.' | 'e' | 'E')
                        || (matches!(chars[i], '-' | '+') && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let n: f64 = s
                    .parse()
                    .map_err(|_| format!("{s:?} is not a number (at character {start})"))?;
                if !n.is_finite() {
                    return Err(format!("{s:?} is not a finite number"));
                }
                out.push(Token::Number(n));
            }
            other => return Err(format!("unexpected character {other:?} at position {i}")),
        }
    }
    if out.is_empty() {
        return Err("empty text".into());
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Token) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(format!(
                "expected {}, found {}",
                want.describe(),
                t.describe()
            )),
            None => Err(format!(
                "expected {}, found the end of the text",
                want.describe()
            )),
        }
    }

    /// Skip a `Z`/`M`/`ZM` tag; true when the next token is `EMPTY` (consumed).
    fn tag_and_empty(&mut self) -> bool {
        if let Some(Token::Word(w)) = self.peek()
            && matches!(w.as_str(), "Z" | "M" | "ZM")
        {
            self.pos += 1;
        }
        if let Some(Token::Word(w)) = self.peek()
            && w == "EMPTY"
        {
            self.pos += 1;
            return true;
        }
        false
    }

    fn geometry(&mut self) -> Result<Geometry<f64>, String> {
        let kind = match self.next() {
            Some(Token::Word(w)) => w,
            Some(t) => return Err(format!("expected a geometry type, found {}", t.describe())),
            None => return Err("expected a geometry type".into()),
        };
        let empty = self.tag_and_empty();
        Ok(match kind.as_str() {
            "POINT" => {
                if empty {
                    return Err("POINT EMPTY has no location".into());
                }
                self.expect(Token::Open)?;
                let c = self.coord()?;
                self.expect(Token::Close)?;
                Geometry::Point(Point(c))
            }
            "LINESTRING" => Geometry::LineString(if empty {
                LineString::new(vec![])
            } else {
                self.line()?
            }),
            "POLYGON" => Geometry::Polygon(if empty {
                Polygon::new(LineString::new(vec![]), vec![])
            } else {
                self.polygon()?
            }),
            "MULTIPOINT" => Geometry::MultiPoint(if empty {
                MultiPoint::new(vec![])
            } else {
                MultiPoint::new(self.list(|p| {
                    // Both `MULTIPOINT (1 2, 3 4)` and `MULTIPOINT ((1 2), (3 4))`.
                    if p.peek() == Some(&Token::Open) {
                        p.pos += 1;
                        let c = p.coord()?;
                        p.expect(Token::Close)?;
                        Ok(Point(c))
                    } else {
                        p.coord().map(Point)
                    }
                })?)
            }),
            "MULTILINESTRING" => Geometry::MultiLineString(if empty {
                MultiLineString::new(vec![])
            } else {
                MultiLineString::new(self.list(|p| p.line())?)
            }),
            "MULTIPOLYGON" => Geometry::MultiPolygon(if empty {
                MultiPolygon::new(vec![])
            } else {
                MultiPolygon::new(self.list(|p| p.polygon())?)
            }),
            "GEOMETRYCOLLECTION" => Geometry::GeometryCollection(if empty {
                GeometryCollection::new_from(vec![])
            } else {
                GeometryCollection::new_from(self.list(|p| p.geometry())?)
            }),
            other => return Err(format!("unsupported geometry type {other}")),
        })
    }

    /// `( item , item , … )`
    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.expect(Token::Open)?;
        let mut out = vec![item(self)?];
        loop {
            match self.next() {
                Some(Token::Comma) => out.push(item(self)?),
                Some(Token::Close) => return Ok(out),
                Some(t) => return Err(format!("expected ',' or ')', found {}", t.describe())),
                None => return Err("expected ',' or ')', found the end of the text".into()),
            }
        }
    }

    fn line(&mut self) -> Result<LineString<f64>, String> {
        Ok(LineString::new(self.list(|p| p.coord())?))
    }

    fn polygon(&mut self) -> Result<Polygon<f64>, String> {
        let mut rings = self.list(|p| {
            let ring = p.line()?;
            if ring.0.len() < 3 {
                return Err(format!(
                    "a polygon ring needs at least 3 positions, found {}",
                    ring.0.len()
                ));
            }
            Ok(ring)
        })?;
        let exterior = rings.remove(0);
        Ok(Polygon::new(exterior, rings))
    }

    /// `x y [z [m]]`
    fn coord(&mut self) -> Result<Coord<f64>, String> {
        let mut ords = Vec::with_capacity(4);
        while let Some(Token::Number(n)) = self.peek() {
            ords.push(*n);
            self.pos += 1;
        }
        if !(2..=4).contains(&ords.len()) {
            return Err(match self.peek() {
                Some(t) if ords.is_empty() => {
                    format!("expected a coordinate 'x y', found {}", t.describe())
                }
                _ => format!("a coordinate needs 2 to 4 numbers, found {}", ords.len()),
            });
        }
        Ok(Coord {
            x: ords[0],
            y: ords[1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::CoordsIter;

    #[test]
    fn parses_every_supported_type() {
        let p = parse_wkt("POINT (10 20)").unwrap();
        assert_eq!(p, Geometry::Point(Point::new(10.0, 20.0)));
        let l = parse_wkt("linestring(0 0, 1 1, 2 0)").unwrap();
        assert_eq!(l.coords_count(), 3);
        let poly =
            parse_wkt("POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 3 2, 3 3, 2 2))").unwrap();
        let Geometry::Polygon(poly) = poly else {
            panic!("not a polygon")
        };
        assert_eq!(poly.interiors().len(), 1);
        let mp =
            parse_wkt("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))").unwrap();
        let Geometry::MultiPolygon(mp) = mp else {
            panic!("not a multipolygon")
        };
        assert_eq!(mp.0.len(), 2);
        let pts = parse_wkt("MULTIPOINT ((1 2), (3 4))").unwrap();
        assert_eq!(pts, parse_wkt("MULTIPOINT (1 2, 3 4)").unwrap());
        let gc = parse_wkt("GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1))").unwrap();
        assert_eq!(gc.coords_count(), 3);
        let z = parse_wkt("POINT Z (1.5 -2e1 300)").unwrap();
        assert_eq!(z, Geometry::Point(Point::new(1.5, -20.0)));
        assert_eq!(parse_wkt("POLYGON EMPTY").unwrap().coords_count(), 0);
    }

    #[test]
    fn rejects_malformed_text_with_a_reason() {
        for (bad, needle) in [
            ("POLYGON ((0 0, 1 0, 1 1", "end of the text"),
            ("POINT (1)", "2 to 4 numbers"),
            ("CIRCLE (1 2)", "unsupported geometry type"),
            ("POINT (1 2) extra", "after the geometry"),
            ("POLYGON ((0 0, 1 1))", "at least 3"),
            ("", "empty"),
            ("POINT (1 2; 3)", "unexpected character"),
            ("POINT (1..2 3)", "not a number"),
        ] {
            let err = parse_wkt(bad).unwrap_err();
            assert!(err.contains(needle), "{bad:?} gave {err:?}");
        }
    }
}
