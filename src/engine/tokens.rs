//! Bearer tokens: issuing under the token rules, the admin token from the environment,
//! revoking, listing, authenticating.

use super::*;

impl Xueji {
    /// Stores a token exactly as given and returns it with its record; only its hash is stored.
    /// No rule is checked: for the operator's own code (first-start admin, demo data, tests).
    /// Everyone else goes through [`Xueji::issue_token`].
    pub fn create_token(&self, mut record: TokenRecord) -> Result<(String, TokenRecord)> {
        let token = generate_token();
        record.id = random_id("tok");
        record.created_at = now_rfc3339();
        self.put_token(token_hash(&token), &record)?;
        Ok((token, record))
    }

    /// Issues a token on behalf of `by`, under the one set of token rules (`POST /v1/tokens`
    /// and `xueji token create`): only admins and officers issue; the scope fields each role
    /// needs; a school or student the issuer cannot see is answered exactly like one that does
    /// not exist; the scope never wider than the issuer's (`auth::scope::issue_token`); an
    /// expiry in the future.
    pub fn issue_token(
        &self,
        by: &TokenRecord,
        req: TokenRequest,
    ) -> Result<(String, TokenRecord)> {
        if !matches!(by.role, Role::Admin | Role::DistrictOfficer) {
            return Err(ServiceError::Forbidden {
                what: "签发令牌".into(),
            });
        }
        let mut record = TokenRecord {
            jurisdiction: req.jurisdiction,
            area: req.area,
            school: req.school,
            class: req.class,
            student: req.student,
            label: req.label,
            created_by: Some(by.id.clone()),
            ..TokenRecord::new(req.role)
        };
        {
            let snap = self.store.snapshot()?;
            if let Some(st) = &record.student {
                let school = match snap.student(st)? {
                    Some(s) => snap.school(&s.school)?,
                    None => None,
                };
                match school {
                    Some(s) if scope::school(by, &s) => record.school = Some(s.id),
                    _ => {
                        return Err(FieldError::new(
                            "unknown_student",
                            "student",
                            "学生不存在或不在权限范围内",
                        )
                        .into());
                    }
                }
            }
            if let Some(sid) = &record.school {
                match snap.school(sid)? {
                    Some(s) if scope::school(by, &s) => record.jurisdiction = Some(s.jurisdiction),
                    _ => {
                        return Err(FieldError::new(
                            "unknown_school",
                            "school",
                            "学校不存在或不在权限范围内",
                        )
                        .into());
                    }
                }
            }
        }
        let mut errors = Vec::new();
        for (field, value, max) in [
            ("label", &record.label, 100),
            ("class", &record.class, 20),
            ("area", &record.area, 50),
        ] {
            if let Some(text) = value
                && let Err(e) = check_optional_text(text, field, max)
            {
                errors.push(e);
            }
        }
        if let Some(text) = &req.expires_at {
            match crate::auth::parse_expiry(text) {
                Ok(at) if at <= chrono::Utc::now() => errors.push(FieldError::new(
                    "expiry_in_past",
                    "expires_at",
                    "有效期须晚于当前时间",
                )),
                Ok(at) => {
                    record.expires_at = Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                }
                Err(e) => errors.push(e),
            }
        }
        let required = match record.role {
            Role::Admin => None,
            Role::DistrictOfficer => record
                .jurisdiction
                .is_none()
                .then_some(("jurisdiction", "教育局账号须指定辖区")),
            Role::SchoolLeader | Role::Registrar => {
                record.school.is_none().then_some(("school", "须指定学校"))
            }
            Role::HeadTeacher => (record.school.is_none() || record.class.is_none())
                .then_some(("class", "班主任须指定学校和班级")),
            Role::Guardian => record
                .student
                .is_none()
                .then_some(("student", "家长账号须指定学生")),
        };
        if let Some((field, message)) = required {
            errors.push(FieldError::new("required", field, message));
        }
        if let Some(j) = &record.jurisdiction
            && self.policies.latest(j).is_none()
        {
            errors.push(FieldError::new(
                "unknown_jurisdiction",
                "jurisdiction",
                "辖区不存在",
            ));
        }
        if !errors.is_empty() {
            return Err(InvalidInput { errors }.into());
        }
        if !self.may_manage_token(by, &record)? {
            return Err(ServiceError::Forbidden {
                what: "签发超出本辖区范围的令牌".into(),
            });
        }
        self.create_token(record)
    }

    /// Whether `by` may see and revoke `token`: admins every token, an officer those it could
    /// have issued.
    fn may_manage_token(&self, by: &TokenRecord, token: &TokenRecord) -> Result<bool> {
        let school = match &token.school {
            Some(id) => self.store.school(id)?,
            None => None,
        };
        Ok(scope::issue_token(by, token, |_| school.clone()))
    }

    /// The token `XUEJI_ADMIN_TOKEN` holds, stored at start (idempotently), and every earlier
    /// token of that variable revoked: changing the value rotates the admin token, the old
    /// value stops working at the first start with the new one. A value once revoked stays
    /// revoked. Returns the variable's token and the tokens revoked now.
    pub fn env_admin_token(&self, token: &str) -> Result<(TokenRecord, Vec<TokenRecord>)> {
        let hash = token_hash(token);
        let current = match self.store.token(&hash)? {
            // The value is some other role's secret: starting would leave no admin of the
            // variable and revoke the one there was.
            Some(existing) if existing.role != Role::Admin => {
                return Err(ServiceError::Conflict {
                    code: "admin_token_taken",
                    message: "XUEJI_ADMIN_TOKEN 的值已是另一角色的令牌,请另选一个值".into(),
                });
            }
            Some(existing) => existing,
            None => {
                let record = TokenRecord {
                    id: random_id("tok"),
                    label: Some("XUEJI_ADMIN_TOKEN".into()),
                    created_at: now_rfc3339(),
                    created_by: Some(crate::auth::ENV_ADMIN.into()),
                    ..TokenRecord::new(Role::Admin)
                };
                self.put_token(hash, &record)?;
                record
            }
        };
        let earlier = self.store.tokens(None, usize::MAX, |r| {
            r.from_env() && !r.revoked && r.id != current.id
        })?;
        let mut revoked = Vec::with_capacity(earlier.len());
        for (_, old) in earlier {
            revoked.push(self.revoke_unchecked(&old.id)?);
        }
        Ok((current, revoked))
    }

    /// Revokes a token on behalf of `by`: one `by` may not manage is "not found", like one
    /// that does not exist. Revoking a revoked token again changes nothing.
    pub fn revoke_token(&self, by: &TokenRecord, id: &str) -> Result<TokenRecord> {
        let not_found = || ServiceError::NotFound {
            what: "token",
            id: id.into(),
        };
        let target = self.store.token_by_id(id)?.ok_or_else(not_found)?;
        if !matches!(by.role, Role::Admin | Role::DistrictOfficer)
            || !self.may_manage_token(by, &target)?
        {
            return Err(not_found());
        }
        self.revoke_unchecked(id)
    }

    fn revoke_unchecked(&self, id: &str) -> Result<TokenRecord> {
        let not_found = || ServiceError::NotFound {
            what: "token",
            id: id.into(),
        };
        let mut record = self.store.token_by_id(id)?.ok_or_else(not_found)?;
        let hash = self.store.token_hash_of(id)?.ok_or_else(not_found)?;
        if record.revoked {
            return Ok(record);
        }
        record.revoked = true;
        self.put_token(hash, &record)?;
        Ok(record)
    }

    /// `(id, record)` of the tokens `by` may manage (see [`Xueji::revoke_token`]), by id, after
    /// the id `after`, at most `limit`. Records hold no secret.
    pub fn list_tokens(
        &self,
        by: &TokenRecord,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, TokenRecord)>> {
        if !matches!(by.role, Role::Admin | Role::DistrictOfficer) {
            return Err(ServiceError::Forbidden {
                what: "查看令牌".into(),
            });
        }
        let snap = self.store.snapshot()?;
        Ok(self.store.tokens(after, limit, |r| {
            scope::issue_token(by, r, |id| snap.school(id).ok().flatten())
        })?)
    }

    /// Stores a token record, then drops every cached one (even if the write failed: the
    /// store decides what holds).
    fn put_token(&self, hash: String, record: &TokenRecord) -> Result<()> {
        let written = self.store.submit(Command::PutToken {
            hash,
            record: Box::new(record.clone()),
        });
        self.tokens.invalidate();
        written?;
        Ok(())
    }

    /// The token record of a bearer token, unless unknown, revoked or expired.
    pub fn authenticate(&self, token: &str) -> Result<Option<TokenRecord>> {
        Ok(match self.check_token(token)? {
            TokenCheck::Valid(r) => Some(*r),
            TokenCheck::Unknown | TokenCheck::Expired => None,
        })
    }

    /// What a bearer token is now: valid (with its record), expired, or unknown (never issued,
    /// or revoked).
    pub fn check_token(&self, token: &str) -> Result<TokenCheck> {
        let hash = token_hash(token);
        let record = match self.tokens.get(&hash) {
            Some(cached) => Some(cached),
            None => {
                let generation = self.tokens.generation();
                let stored = match self.store.token(&hash) {
                    // A damaged record authenticates no one; `verify` names it.
                    Err(StoreError::Damaged { .. }) => None,
                    other => other?,
                };
                if let Some(r) = &stored {
                    self.tokens.insert(hash, r.clone(), generation);
                }
                stored
            }
        };
        Ok(match record {
            None => TokenCheck::Unknown,
            Some(r) if r.revoked => TokenCheck::Unknown,
            Some(r) if r.expired_at(chrono::Utc::now()) => TokenCheck::Expired,
            Some(r) => TokenCheck::Valid(Box::new(r)),
        })
    }
}
